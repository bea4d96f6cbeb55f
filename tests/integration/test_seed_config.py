# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/seed_config.yml through ansible-playbook against a real Consul agent (ACLs on) on loopback.

Each environment is an inventory directory of its own (inventories/qa, inventories/prod) whose one host, localhost
over the local connection, is the scheduler master the play runs on; the config directory beside the inventories
holds <environment>/<app>/, one file a key, as docs/consul_keys.md describes.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support.consul_agent import MASTER_TOKEN

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "seed_config.yml"
BIN = Path(sys.executable).parent
APP = "seedtest-shop"
RECAP = re.compile(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
routing = importlib.import_module("ansible_collections.dockyard.platform.plugins.module_utils.daemon.routing")


@dataclass
class Run:
    returncode: int
    output: str

    @property
    def changed(self) -> int:
        _host, changed, _unreachable, _failed = RECAP.findall(self.output)[0]
        return int(changed)

    def says(self, text: str) -> bool:
        # The YAML result format folds long messages over several lines.
        return " ".join(text.split()) in " ".join(self.output.split())


class Site:
    """A project checkout: inventories/<env>/ pointing at the test agent, config/<env>/<app>/, a vault password."""

    def __init__(self, base: Path, agent):
        self.base = base
        self.agent = agent
        self.vault_password = base / "vault-password"
        self.vault_password.write_text("correct horse battery staple\n")
        for environment in ("qa", "prod"):
            inventory = base / "inventories" / environment
            (inventory / "group_vars").mkdir(parents=True)
            (inventory / "hosts.yml").write_text(
                "scheduler_masters:\n  hosts:\n"
                f"    localhost: {{ansible_connection: local, ansible_python_interpreter: {sys.executable}}}\n"
            )
            (inventory / "group_vars" / "all.yml").write_text(
                f"dockyard_consul_address: {agent.address}\ndockyard_consul_scheme: http\n"
                f"dockyard_deployer_consul_token: {MASTER_TOKEN}\n"
            )
            agent.delete_tree(f"config/{environment}/{APP}")

    def config(self, environment: str, key: str) -> Path:
        return self.base / "config" / environment / APP / key

    def write(self, environment: str, key: str, value: str) -> Path:
        path = self.config(environment, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
        return path

    def encrypt(self, path: Path) -> None:
        subprocess.run(
            [str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(self.vault_password), str(path)],
            env=self.environment(),
            capture_output=True,
            check=True,
        )

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".cache" / "collections"),
            "ANSIBLE_NOCOLOR": "1",
        }

    def run(self, environment: str, *options: str) -> Run:
        command = [str(BIN / "ansible-playbook"), "-i", f"inventories/{environment}", str(PLAYBOOK)]
        command += ["--vault-password-file", str(self.vault_password), *options]
        done = subprocess.run(
            command, env=self.environment(), cwd=self.base, capture_output=True, text=True, timeout=300, check=False
        )
        return Run(done.returncode, done.stdout + done.stderr)

    def seed(self, environment: str, *options: str) -> Run:
        done = self.run(environment, "-e", f"app={APP}", *options)
        assert done.returncode == 0, done.output[-4000:]
        return done

    def tree(self, environment: str) -> dict[str, str]:
        prefix = f"config/{environment}/{APP}/"
        return {key[len(prefix) :]: self.agent.get(key).decode() for key in self.agent.keys(prefix)}


@pytest.fixture
def site(tmp_path, consul_acl_agent):
    return Site(tmp_path, consul_acl_agent)


SECRETS = ["-e", json.dumps({"seed_config_secret_keys": ["db/password"]})]


def test_each_environment_seeds_its_own_prefix_then_reruns_checks_and_removals(site):
    site.write("qa", "db/host", "db.qa.internal\n")
    site.write("qa", "replicas", "2")
    site.write("qa", "motd", "{{ not templated }}")
    site.encrypt(site.write("qa", "db/password", "qa-s3cr3t-Pa55"))
    site.write("qa", ".editorconfig", "skipped: hidden")
    site.write("prod", "db/host", "db.prod.internal\n")
    site.write("prod", "replicas", "6")

    qa = site.seed("qa", "--diff", *SECRETS)
    site.seed("prod")
    assert qa.changed == 1
    assert "qa-s3cr3t-Pa55" not in qa.output, "a secret key's value is masked in the diff"
    assert site.tree("qa") == {
        "db/host": "db.qa.internal\n",
        "db/password": "qa-s3cr3t-Pa55",
        "motd": "{{ not templated }}",
        "replicas": "2",
    }
    assert site.tree("prod") == {"db/host": "db.prod.internal\n", "replicas": "6"}

    assert site.seed("qa", *SECRETS).changed == 0, "a rerun with the same files changes nothing"

    site.write("qa", "replicas", "3")
    site.write("qa", "db/password", "qa-n3w-Pa55")
    checked = site.seed("qa", "--check", "--diff", *SECRETS)
    assert checked.changed == 1
    assert re.search(rf"^-\s+config/qa/{APP}/replicas: '2'$", checked.output, re.MULTILINE), checked.output
    assert re.search(rf"^\+\s+config/qa/{APP}/replicas: '3'$", checked.output, re.MULTILINE), checked.output
    assert "qa-s3cr3t-Pa55" not in checked.output and "qa-n3w-Pa55" not in checked.output
    assert checked.says(f"config/qa/{APP}/ from {site.config('qa', '')}: would add 0, would update 2")
    assert site.tree("qa")["replicas"] == "2" and site.tree("qa")["db/password"] == "qa-s3cr3t-Pa55"

    site.config("qa", "motd").unlink()
    removed = site.seed("qa")
    assert removed.says(f"removed: config/qa/{APP}/motd")
    assert site.tree("qa") == {"db/host": "db.qa.internal\n", "db/password": "qa-n3w-Pa55", "replicas": "3"}
    assert site.tree("prod") == {"db/host": "db.prod.internal\n", "replicas": "6"}, "another environment's keys"

    site.config("qa", "db/host").unlink()
    kept = site.seed("qa", "-e", "seed_config_exclusive=false")
    assert kept.changed == 0
    assert site.tree("qa")["db/host"] == "db.qa.internal\n", "seed_config_exclusive=false removes nothing"


@pytest.mark.parametrize(
    ("app", "named"),
    [
        ("../prod", 'app is "../prod", not an app name'),
        ("-shop", 'app is "-shop", not an app name'),
        (None, "app is not set"),
    ],
    ids=["path", "leading-sign", "missing"],
)
def test_a_bad_app_name_fails_naming_app_before_anything_is_written(site, app, named):
    site.write("qa", "replicas", "2")
    before = site.agent.keys("config/")
    done = site.run("qa", *(["-e", json.dumps({"app": app})] if app else []))
    assert done.returncode != 0
    assert done.says(named), done.output[-2000:]
    assert site.agent.keys("config/") == before


def test_a_missing_directory_and_a_link_out_of_it_fail_naming_them_before_anything_is_written(site):
    missing = site.run("qa", "-e", f"app={APP}")
    assert missing.returncode != 0
    assert missing.says(f"{site.config('qa', '')} is not a directory on the controller")

    site.write("qa", "replicas", "2")
    outside = site.base / "deploy-key"
    outside.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    site.config("qa", "key").symlink_to(outside)
    linked = site.run("qa", "-e", f"app={APP}")
    assert linked.returncode != 0
    assert linked.says(f"symbolic links that lead out of {site.config('qa', '')}: {site.config('qa', 'key')} ->")
    assert "PRIVATE KEY" not in linked.output
    assert site.tree("qa") == {}


def test_the_app_name_grammar_is_the_routers():
    play = yaml.safe_load(PLAYBOOK.read_text())[0]
    assert play["vars"]["_seed_config_app_grammar"] == routing._NAME.pattern
