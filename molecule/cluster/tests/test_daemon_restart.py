"""A changed file of the shared daemon package restarts every daemon that imports it, on every node, and nothing else.

side_effect.yml changed the shared package (the build label ends dockyard/daemon/__init__.py) and ran the
registrator's play, then the routers' (which runs the renderer), as site.yml orders them: the registrator's
role installed the changed file, so the renderer's found it in place. Each node recorded the main PID of its
services before and after.
"""

import json

import pytest

testinfra_hosts = ["manager1", "agent1", "agent2"]

RECORD = "/var/lib/dockyard-test-restarts.json"
SHARED_INIT = "/usr/lib/dockyard/dockyard/daemon/__init__.py"
DAEMONS = ("dockyard-registrator", "dockyard-renderer")  # every node of the scenario runs both
OTHERS = ("haproxy", "consul")


@pytest.fixture
def record(host):
    return json.loads(host.file(RECORD).content_string)


def main_pid(host, service):
    return host.check_output(f"systemctl show --property=MainPID --value {service}").strip()


def test_the_shared_package_on_the_node_is_the_changed_one(host):
    assert host.file(SHARED_INIT).content_string.endswith("# build: side-effect\n")


@pytest.mark.parametrize("service", DAEMONS)
def test_every_daemon_that_imports_the_shared_package_restarted(host, record, service):
    before, after = record["before"][service], record["after"][service]
    assert before != "0" and after != "0", f"{service} was not running: {record}"
    assert after != before, f"{service} kept running the old code (main PID {before})"
    # Still the process the roles started: it runs the new code, and did not fail and restart since.
    assert main_pid(host, service) == after


@pytest.mark.parametrize("service", OTHERS)
def test_nothing_else_restarted(host, record, service):
    assert record["before"][service] != "0", f"{service} was not running: {record}"
    assert record["after"][service] == record["before"][service], f"{service} restarted: {record}"
