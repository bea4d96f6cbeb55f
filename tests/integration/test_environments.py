# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Two environments from one controller: ansible-playbook runs the controller-side secret tasks for real.

One controller (one HOME) that still has the old layout of the staging cluster (~/.dockyard/dockyard/consul-dc1,
the ZooKeeper password beside it, ~/.dockyard/pki/staging, ~/.dockyard/secrets/staging) runs, on localhost, what
site.yml runs first (playbooks/tasks/environment.yml) and then the roles' own task files that make secrets on the
controller: the consul role's secrets.yml and ca.yml (gossip key from the real `consul keygen`, tokens, CA),
docker_host's ca.yml (the platform CA and the operator's client certificate) and the zookeeper role's password
default, and the lab inventories' registry password. The old layout is made by the same task files, run once for a
throwaway environment and moved into place. The qa environment is made with a vault password (its secrets are
encrypted at rest, docs/secrets.md), staging without one; copies of the two show a plain environment encrypted in
place and an encrypted one refused without the password.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from ansible.parsing.vault import VaultLib, VaultSecret

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

ENVIRONMENT_PLAY = f"""
- name: Name the environment and bring its secrets under one directory, as site.yml does first
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Create the environment's secrets directory and copy the old layout's stores into it
      ansible.builtin.import_tasks: {REPO}/playbooks/tasks/environment.yml
"""

SECRETS_PLAY = f"""
- name: Make the platform's secrets on the controller with the roles' own task files
  hosts: all
  gather_facts: false
  tasks:
    - name: Create or reuse the Consul gossip key and tokens
      ansible.builtin.include_role:
        name: dockyard.platform.consul
        tasks_from: secrets

    - name: Create or reuse the Consul CA
      ansible.builtin.include_role:
        name: dockyard.platform.consul
        tasks_from: ca

    - name: Create or reuse the Docker platform CA and the operator's client certificate
      ansible.builtin.include_role:
        name: dockyard.platform.docker_host
        tasks_from: ca
        public: true

    - name: Read the registry and ZooKeeper roles' defaults
      ansible.builtin.include_vars:
        file: "{{{{ item }}}}"
      loop:
        - {REPO}/roles/registry/defaults/main.yml
        - {REPO}/roles/zookeeper/defaults/main.yml

    # Namespaced, so that the lab environments' own names (dockyard_environment) do not rename this one.
    - name: Read the registry password as each lab inventory defines it
      ansible.builtin.include_vars:
        file: "{{{{ item }}}}"
        name: __lab_{{{{ index }}}}
      loop:
        - {REPO}/inventories/lab/group_vars/docker_hosts.yml
        - {REPO}/lab/environments/qa/group_vars/all.yml
        - {REPO}/lab/environments/staging/group_vars/all.yml
      loop_control:
        index_var: index

    # A lab inventory whose lookup read the file as it is (ansible.builtin.password) would get the vault text.
    - name: Make the ZooKeeper and lab registry passwords once; the registry shares docker_host's CA
      ansible.builtin.assert:
        that:
          - zookeeper_deployer_password | length == 32
          - __lab_0.lab_registry_password | length == 24
          - __lab_1.lab_registry_password == __lab_0.lab_registry_password
          - __lab_2.lab_registry_password == __lab_0.lab_registry_password
          - registry_pki_dir == docker_host_pki_dir
        quiet: true
      no_log: true
"""

VAULT_PASSWORD = b"a throwaway vault password for qa"
VAULT = VaultLib([("default", VaultSecret(VAULT_PASSWORD))])
# The public files of an environment's directory; everything else in it is a secret.
CERTIFICATES = ("ca.pem", "ca.crt", "client-cert.pem")

RECAP = re.compile(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


@dataclass
class Run:
    returncode: int
    output: str

    @property
    def changed(self) -> dict[str, int]:
        return {host: int(changed) for host, changed, _unreachable, _failed in RECAP.findall(self.output)}

    def says(self, text: str) -> bool:
        # The YAML result format folds long messages over several lines.
        return " ".join(text.split()) in " ".join(self.output.split())


class Controller:
    """One controller: its HOME (where the old layout lives) and the root of every environment's directory."""

    def __init__(self, base: Path):
        self.base = base
        self.home = base / "home"
        self.root = base / "environments"
        self.home.mkdir()
        self.vault_password_file = base / "vault.pass"
        self.vault_password_file.write_bytes(VAULT_PASSWORD + b"\n")
        self.vault_password_file.chmod(0o600)
        self.with_vault = ("--vault-password-file", str(self.vault_password_file))

    def inventory(self, name: str, root: Path | None = None) -> Path:
        directory = self.base / "inventories" / name
        (directory / "group_vars").mkdir(parents=True, exist_ok=True)
        (directory / "hosts.yml").write_text(
            "consul_servers:\n  hosts:\n"
            f"    {name}-node1: {{ansible_connection: local, ansible_python_interpreter: {sys.executable}}}\n"
        )
        (directory / "group_vars" / "all.yml").write_text(f"dockyard_secrets_root: {root or self.root}\n")
        return directory

    def start(self, inventory: Path, plays: str, *options: str) -> subprocess.Popen:
        """ansible-playbook started on `plays`; two may run at once."""
        descriptor, playbook = tempfile.mkstemp(dir=self.base, prefix="playbook-", suffix=".yml")
        with os.fdopen(descriptor, "w") as handle:
            handle.write("---" + plays)
        environment = {
            # The runs have a vault password only when a test gives one.
            **{name: value for name, value in os.environ.items() if not name.startswith("ANSIBLE_VAULT")},
            "HOME": str(self.home),
            "PATH": f"{REPO / '.cache' / 'bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}",
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".cache" / "collections"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
            "ANSIBLE_NOCOLOR": "1",
        }
        return subprocess.Popen(
            [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), playbook, *options],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @staticmethod
    def finish(process: subprocess.Popen, succeed: bool = True) -> Run:
        try:
            stdout, stderr = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
        if succeed:
            assert process.returncode == 0, stdout[-4000:] + stderr[-4000:]
        # Warnings go to stderr.
        return Run(process.returncode, stdout + stderr)

    def run(self, inventory: Path, plays: str, *options: str) -> Run:
        return self.finish(self.start(inventory, plays, *options))

    def make_old_layout_of(self, name: str) -> None:
        """The stores the old layout kept for the cluster of inventory `name`, made by today's task files."""
        made = self.base / "made-for-the-old-layout"
        self.run(self.inventory("legacy", root=made), SECRETS_PLAY)
        old = self.home / ".dockyard"
        (old / "dockyard").mkdir(parents=True)
        (old / "pki").mkdir()
        shutil.move(made / "legacy" / "consul" / "consul-dc1", old / "dockyard" / "consul-dc1")
        shutil.move(made / "legacy" / "zookeeper" / "zookeeper-deployer.password", old / "dockyard")
        shutil.move(made / "legacy" / "pki", old / "pki" / name)
        (old / "dockyard" / "consul-dc1" / "management.token").write_text("old-layout-management-token\n")
        (old / "secrets" / name).mkdir(parents=True)
        (old / "secrets" / name / "swarm-oldcluster.unlock-key").write_text("old-layout-unlock-key\n")
        # The old layout left the CA certificates readable by everyone.
        (old / "dockyard" / "consul-dc1" / "ca.pem").chmod(0o644)
        (old / "pki" / name / "ca.crt").chmod(0o644)
        shutil.rmtree(made)


def is_certificate(path: Path) -> bool:
    return path.name in CERTIFICATES


def encrypted(content: bytes) -> bool:
    return content.startswith(b"$ANSIBLE_VAULT;")


def snapshot(directory: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every path below `directory`: its content (None for a directory) and its mode."""
    return {
        str(path.relative_to(directory)): (
            None if path.is_dir() else path.read_bytes(),
            stat.S_IMODE(path.stat().st_mode),
        )
        for path in sorted(directory.rglob("*"))
    }


@dataclass
class Story:
    controller: Controller
    old_layout: dict[str, tuple[bytes | None, int]]
    check: Run
    after_check: list[str]
    first: dict[str, Run]
    second: dict[str, Run]
    before_second: dict[str, dict]
    after_second: dict[str, dict]


@pytest.fixture(scope="module")
def story(tmp_path_factory) -> Story:
    controller = Controller(tmp_path_factory.mktemp("controller"))
    controller.make_old_layout_of("staging")
    old_layout = snapshot(controller.home / ".dockyard")
    inventories = {name: controller.inventory(name) for name in ("qa", "staging")}
    options = {"qa": controller.with_vault, "staging": ()}
    check = controller.run(inventories["staging"], ENVIRONMENT_PLAY, "--check")
    after_check = sorted(str(path.relative_to(controller.root)) for path in controller.root.rglob("*"))

    def both() -> dict[str, Run]:
        # The two environments share no file, so their runs go side by side.
        started = {
            name: controller.start(inventory, ENVIRONMENT_PLAY + SECRETS_PLAY, *options[name])
            for name, inventory in inventories.items()
        }
        runs = {name: Controller.finish(process, succeed=False) for name, process in started.items()}
        for name, run in runs.items():
            assert run.returncode == 0, (name, run.output[-8000:])
        return runs

    first = both()
    before_second = {name: snapshot(controller.root / name) for name in inventories}
    second = both()
    after_second = {name: snapshot(controller.root / name) for name in inventories}
    return Story(controller, old_layout, check, after_check, first, second, before_second, after_second)


def read(story: Story, environment: str, path: str) -> bytes:
    """The file's content, decrypted when it is encrypted."""
    content = (story.controller.root / environment / path).read_bytes()
    return VAULT.decrypt(content) if encrypted(content) else content


STORES = (
    "consul/consul-dc1/ca-key.pem",
    "consul/consul-dc1/gossip.key",
    "consul/consul-dc1/tokens/agent.json",
    "pki/ca.key",
    "pki/client-key.pem",
    "registry/deploy.password",
    "zookeeper/zookeeper-deployer.password",
)


def test_each_environment_has_its_own_directory_under_the_root(story):
    assert sorted(path.name for path in story.controller.root.iterdir()) == ["qa", "staging"]
    for environment in ("qa", "staging"):
        for path in STORES:
            assert (story.controller.root / environment / path).is_file(), (environment, path)


def test_two_environments_share_nothing(story):
    for path in STORES:
        # Compared without printing either secret on failure.
        assert (read(story, "qa", path) != read(story, "staging", path)) is True, path


def test_directories_are_0700_and_files_0600(story):
    assert stat.S_IMODE(story.controller.root.stat().st_mode) == 0o700
    for environment in ("qa", "staging"):
        for relative, (content, mode) in story.after_second[environment].items():
            assert mode == (0o700 if content is None else 0o600), (environment, relative, oct(mode))
        assert stat.S_IMODE((story.controller.root / environment).stat().st_mode) == 0o700


def test_a_second_run_changes_nothing(story):
    for environment, run in story.second.items():
        assert run.changed and set(run.changed.values()) == {0}, (environment, run.changed)
        assert not run.says("Copied ")
        # qa's secrets are encrypted, with a new salt each time: the same bytes mean none was rewritten.
        assert story.after_second[environment] == story.before_second[environment], environment


def test_the_old_layout_is_copied_into_its_own_environment_once(story):
    old = story.controller.home / ".dockyard"
    expected = {
        "consul/consul-dc1": old / "dockyard" / "consul-dc1",
        "zookeeper/zookeeper-deployer.password": old / "dockyard" / "zookeeper-deployer.password",
        "pki": old / "pki" / "staging",
        "scheduler": old / "secrets" / "staging",
    }
    staging = story.controller.root / "staging"
    for new, source in expected.items():
        assert story.first["staging"].says(f"from {source} (the old layout) to {staging / new}"), new
        sources = [source] if source.is_file() else [path for path in source.rglob("*") if path.is_file()]
        for path in sources:
            copied = staging / new / path.relative_to(source) if source.is_dir() else staging / new
            assert (copied.read_bytes() == path.read_bytes()) is True, copied
    assert story.first["staging"].says("delete it once every environment that used it has been migrated")


def test_the_old_layout_is_never_deleted_nor_changed(story):
    assert snapshot(story.controller.home / ".dockyard") == story.old_layout


def test_a_new_environment_does_not_inherit_the_old_shared_store(story):
    qa = story.first["qa"]
    assert not qa.says("Copied ")
    assert qa.says("Not copying the Consul CA, gossip key, management token and tokens from")
    assert not (story.controller.root / "qa" / "consul" / "consul-dc1" / "management.token").exists()


def test_check_mode_reports_the_copy_and_writes_nothing(story):
    assert story.check.says("Would copy the Consul CA")
    assert story.check.changed["localhost"] > 0
    # Only the directories themselves: check mode creates nothing, so the root is still empty.
    assert story.after_check == []


def test_a_run_with_a_vault_password_writes_every_secret_encrypted(story):
    qa = story.controller.root / "qa"
    files = [path for path in qa.rglob("*") if path.is_file()]
    assert {str(path.relative_to(qa)) for path in files} >= set(STORES)
    for path in files:
        content = path.read_bytes()
        if is_certificate(path):
            assert content.startswith(b"-----BEGIN CERTIFICATE-----"), path
        else:
            assert encrypted(content), path
            assert VAULT.decrypt(content), path
    # The same roles without a vault password write the same secrets in plain text.
    for path in STORES:
        assert not encrypted((story.controller.root / "staging" / path).read_bytes()), path


@dataclass
class Copy:
    directory: Path
    before: dict[str, tuple[bytes | None, int]]
    run: Run


@pytest.fixture(scope="module")
def copies(story) -> dict[str, Copy]:
    """Copies (modes kept) of the plain staging, run with the vault password, and of the encrypted qa, run without.

    Each is an environment of its own under a root of its own, so the story's directories stay as they were."""
    controller = story.controller
    root = controller.base / "copies"
    sources = {"plain": ("staging", controller.with_vault), "locked": ("qa", ())}
    before = {}
    started = {}
    for name, (source, options) in sources.items():
        shutil.copytree(controller.root / source, root / name)
        before[name] = snapshot(root / name)
        started[name] = controller.start(controller.inventory(name, root=root), ENVIRONMENT_PLAY, *options)
    return {
        name: Copy(root / name, before[name], Controller.finish(process, succeed=False))
        for name, process in started.items()
    }


def test_a_plain_environment_is_encrypted_in_place_with_its_content(copies):
    copy = copies["plain"]
    assert copy.run.returncode == 0, copy.run.output[-4000:]
    assert {relative for relative, entry in copy.before.items() if entry[0] is not None} >= set(STORES)
    for relative, (content, mode) in copy.before.items():
        path = copy.directory / relative
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
        if content is None:
            continue
        now = path.read_bytes()
        if is_certificate(path):
            assert now == content, path
        else:
            assert copy.run.says(f"Encrypted {path} in place with ansible-vault (vault id default): it was plain text.")
            assert encrypted(now), path
            # Compared without printing the secret on failure.
            assert (VAULT.decrypt(now) == content) is True, path


def test_encrypted_secrets_and_no_vault_password_stop_the_run_and_change_nothing(copies):
    copy = copies["locked"]
    assert copy.run.returncode != 0
    named = re.findall(
        rf"({re.escape(str(copy.directory))}/\S+) is encrypted with ansible-vault, but this run has no vault password: "
        "pass it with --vault-password-file, --vault-id or ANSIBLE_VAULT_PASSWORD_FILE. The file is left as it is.",
        " ".join(copy.run.output.split()),
    )
    assert named, copy.run.output[-4000:]
    assert all(encrypted(Path(path).read_bytes()) for path in named), named
    assert snapshot(copy.directory) == copy.before
