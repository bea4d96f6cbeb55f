"""The lab's set-up scripts fail with one clear sentence, not a traceback, and the tool fetchers exit 0.

lab/up.yml and lab/down.yml serve any lab inventory: each names its own lab, and one they cannot serve is refused
before anything is made or removed.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
NOBODY = 65534
# Each lab inventory, with the lab (containers, network, volumes) and the environment (secrets directory) it names.
LAB_INVENTORIES = {
    "inventories/lab": ("lab", "lab"),
    "lab/environments/qa": ("qa-lab", "qa-lab"),
    "lab/environments/staging": ("staging-lab", "staging-lab"),
}


@pytest.fixture
def readable_by_nobody():
    """A directory user nobody can enter: /tmp itself is world-searchable, the checkout may not be.

    pytest's tmp_path (and a checkout under a `mktemp -d` directory or root's home) sits below a 0700 directory.
    """
    directory = Path(tempfile.mkdtemp(prefix="dockyard-lab-scripts-", dir="/tmp"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_no_engine_and_no_root_says_what_is_missing(readable_by_nobody):
    script = readable_by_nobody / "ensure-engine.sh"
    shutil.copyfile(ROOT / "lab/ensure-engine.sh", script)
    script.chmod(0o644)
    result = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "bash", str(script)],
        env={"PATH": os.environ["PATH"], "DOCKER_HOST": "unix:///nonexistent/docker.sock"},
        cwd=readable_by_nobody,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("No Docker engine answers and this is not root")


@pytest.mark.parametrize(("script", "tool"), [("fetch-consul.sh", "consul"), ("fetch-haproxy.sh", "haproxy")])
def test_the_tool_fetchers_print_the_version_line_without_dying_of_sigpipe(tmp_path, script, tool):
    """The last line of each fetcher prints the tool's version under `set -euo pipefail`.

    A `| head -1` there ends with SIGPIPE (exit 141, and `make tools` with it) whenever the tool writes again after
    head has gone; the fake tool below always does.
    """
    fake = tmp_path / tool
    fake.write_text("#!/bin/sh\necho 'version line'\nsleep 0.3\necho 'more'\necho 'and more'\n")
    fake.chmod(0o755)
    last = [line for line in (ROOT / "tests/tools" / script).read_text().splitlines() if line.strip()][-1]
    assert tool in last
    result = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\ndest=$1\n{last}", "bash", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "version line\n"


def run_playbook(tmp_path, inventory, playbook, *extra):
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".cache" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
    }
    command = ["ansible-playbook", "-i", str(inventory), "-e", f"ansible_python_interpreter={sys.executable}"]
    command += [*extra, str(playbook)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)


@pytest.mark.parametrize(("inventory", "names"), LAB_INVENTORIES.items())
def test_each_lab_inventory_names_its_lab_and_each_hosts_container(tmp_path, inventory, names):
    playbook = tmp_path / "check.yml"
    tasks = [
        {
            "ansible.builtin.include_tasks": str(ROOT / "lab/tasks/lab-inventory.yml"),
            "vars": {"lab_check_hosts": True},
        },
        {
            "ansible.builtin.debug": {
                "msg": "lab={{ lab_name }} environment={{ lookup('dockyard.platform.environment_dir') | basename }}"
            }
        },
    ]
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    result = run_playbook(tmp_path, ROOT / inventory, playbook)
    assert result.returncode == 0, result.stdout + result.stderr
    lab, environment = names
    assert f"lab={lab} environment={environment}" in result.stdout


def test_no_two_lab_inventories_share_a_lab_or_an_environment():
    """Two labs on one controller must differ in both names, and no lab may take an example inventory's secrets."""
    assert set(LAB_INVENTORIES) == {"inventories/lab"} | {
        str(path.relative_to(ROOT)) for path in (ROOT / "lab/environments").iterdir() if path.is_dir()
    }
    labs = [names[0] for names in LAB_INVENTORIES.values()]
    environments = [names[1] for names in LAB_INVENTORIES.values()]
    assert len(set(labs)) == len(labs)
    assert len(set(environments)) == len(environments)
    examples = {path.name for path in (ROOT / "inventories").iterdir() if path.is_dir() and path.name != "lab"}
    assert not examples & set(environments)


WRONG_CONTAINER = "all:\n  children:\n    lab:\n      hosts:\n        n1:\n          ansible_host: dockyard-qa-n1\n"
NO_LAB_GROUP = "all:\n  hosts:\n    n1:\n"


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        (
            WRONG_CONTAINER,
            "Host n1 has ansible_host dockyard-qa-n1, but lab/up.yml names its container dockyard-lab-n1 ",
        ),
        (NO_LAB_GROUP, "has no host in the group lab"),
    ],
)
def test_lab_up_refuses_an_inventory_it_cannot_serve_before_making_anything(tmp_path, hosts, message):
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text(hosts)
    result = run_playbook(tmp_path, inventory, ROOT / "lab/up.yml")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert message in output
    assert "changed=0" in output
    assert "Find the base image" not in output


# The first task of each playbook that reaches the Docker engine.
@pytest.mark.parametrize(
    ("playbook", "name", "first_engine_task"),
    [("lab/up.yml", "QA", "Find the base image"), ("lab/down.yml", "qa lab", "Find what the lab made")],
)
def test_lab_up_and_down_refuse_a_lab_name_docker_names_cannot_carry(tmp_path, playbook, name, first_engine_task):
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text(WRONG_CONTAINER)
    result = run_playbook(tmp_path, inventory, ROOT / playbook, "-e", json.dumps({"lab_name": name}))
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"lab_name is {json.dumps(name)} (inventory {inventory})" in output
    assert "changed=0" in output
    assert first_engine_task not in output
