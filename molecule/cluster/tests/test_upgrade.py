"""playbooks/upgrade.yml on the running cluster. Debian has one version of each package here, so what shows is:
the version every host has already changes nothing and restarts nothing; a version no host can install is refused
before anything changes, naming each host and the package; a component that is no package is refused."""

import os
import re
import subprocess
from pathlib import Path

from cluster import NODES, node_exec
from deploying import ROOT

PLAYBOOK = ROOT / "playbooks" / "upgrade.yml"


def upgrade(*arguments: str) -> tuple:
    """(return code, the run's log with its whitespace folded) of one run of upgrade.yml."""
    done = subprocess.run(
        ["ansible-playbook", "-i", str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent), str(PLAYBOOK), *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_NOCOLOR": "1"},
    )
    return done.returncode, re.sub(r"\s+", " ", done.stdout + done.stderr)


def consul_started() -> dict:
    show = "systemctl show --property=MainPID,ActiveEnterTimestampMonotonic consul"
    return {node: node_exec(node, show).stdout for node in NODES}


def changes(log: str) -> set:
    return set(re.findall(r"changed=(\d+)", log))


def test_the_version_every_host_has_changes_and_restarts_nothing():
    versions = {node: node_exec(node, "dpkg-query --show --showformat '${Version}' consul").stdout for node in NODES}
    assert len(set(versions.values())) == 1, versions
    version = versions["manager1"]
    before = consul_started()
    returncode, log = upgrade("-e", "component=consul", "-e", f"version={version}")
    assert returncode == 0, log[-3000:]
    assert changes(log) == {"0"}, log[-3000:]
    for node in NODES:
        assert f"consul: {node} has {version} already; not restarted" in log
    assert consul_started() == before


def test_a_version_no_host_can_install_is_refused_naming_each_host_and_package():
    before = consul_started()
    returncode, log = upgrade("-e", "component=consul", "-e", "version=0.0.1-dockyard1")
    assert returncode != 0
    assert "upgrade.yml: consul 0.0.1-dockyard1 cannot be installed on" in log, log[-3000:]
    for node in NODES:
        assert re.search(rf"{node} \(package consul: it has [^)]+\)", log), (node, log[-3000:])
    assert "Nothing was changed." in log
    assert changes(log) == {"0"}
    assert consul_started() == before


def test_a_component_that_comes_with_the_collection_is_refused():
    returncode, log = upgrade("-e", "component=renderer", "-e", "version=1")
    assert returncode != 0
    assert "upgrade.yml: renderer is not a Debian package" in log
    assert "Packages: consul, haproxy, zookeeper." in log
    assert changes(log) == {"0"}
