"""Bad input fails (or warns) before anything changes: the roles run again from
here with ansible-playbook against the scenario's inventory plus a bad one."""

import os
import re
import subprocess
from pathlib import Path

import pytest
from coordination_lib import MEMBERS, lab_host

testinfra_hosts = ["node1"]

PLAYBOOK = Path(__file__).parents[1] / "bad-input.yml"
WATCHED = " ".join(
    [
        "/etc/zookeeper/dockyard/zoo.cfg",
        "/var/lib/zookeeper/myid",
        "/etc/consul.d/dockyard.json",
        "/etc/consul.d/tls/agent.pem",
    ]
)


def fingerprint() -> dict:
    return {m: lab_host(m).check_output(f"sha256sum {WATCHED}") for m in MEMBERS}


def play(tmp_path: Path, role: str, extra_inventory: str | None = None, *args: str):
    inventory = str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)
    command = ["ansible-playbook", "-i", inventory, str(PLAYBOOK), "-e", f"bad_input_role={role}", *args]
    if extra_inventory:
        extra = tmp_path / "bad.yml"
        extra.write_text(extra_inventory)
        command[3:3] = ["-i", str(extra)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    output = re.sub(r"\s+", " ", result.stdout + result.stderr)
    changed = [int(n) for n in re.findall(r"changed=(\d+)", output)]
    return result.returncode, output, changed


@pytest.fixture
def unchanged():
    before = fingerprint()
    yield
    assert fingerprint() == before


@pytest.mark.usefixtures("unchanged")
def test_empty_consul_server_group_fails_naming_the_hosts(tmp_path):
    rc, output, changed = play(tmp_path, "consul", None, "-e", "consul_server_group=nobody")
    assert rc != 0
    assert "the server group 'nobody' (consul_server_group) is empty" in output
    assert "node1, node2, node3 would have no server to join" in output
    assert changed and not any(changed)


@pytest.mark.usefixtures("unchanged")
def test_empty_zookeeper_group_fails_naming_the_hosts(tmp_path):
    rc, output, changed = play(tmp_path, "zookeeper", None, "-e", "zookeeper_group=nobody")
    assert rc != 0
    assert "the group 'nobody' (zookeeper_group) is empty" in output
    assert "hosts in this play: node1, node2, node3" in output
    assert changed and not any(changed)


@pytest.mark.usefixtures("unchanged")
def test_myid_collision_fails_naming_the_hosts(tmp_path):
    rc, output, changed = play(tmp_path, "zookeeper", "all:\n  hosts:\n    node3:\n      zookeeper_myid: 1\n")
    assert rc != 0
    assert "myid 1 is claimed by node1 and node3" in output
    assert changed and not any(changed)


@pytest.mark.usefixtures("unchanged")
def test_even_sized_groups_warn(tmp_path):
    pair = "all:\n  children:\n    pair:\n      hosts:\n        node1:\n        node2:\n"
    for role, group_var in (("zookeeper", "zookeeper_group"), ("consul", "consul_server_group")):
        options = ["-e", f"{group_var}=pair", "-e", "bad_input_hosts=pair", "-e", "bad_input_tasks=preflight"]
        rc, output, changed = play(tmp_path, role, pair, *options)
        assert rc == 0, output[-2000:]
        assert "[WARNING]" in output and "has 2 members (node1, node2)" in output
        assert "adds no fault tolerance" in output or "survives no more failures" in output
        assert changed and not any(changed)
