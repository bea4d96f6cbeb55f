"""One Swarm manager and two workers, as the inventory says.

Tests run on the manager and reach the other nodes through it. The first verify
checks the formed swarm; side_effect then removes agent2 through the roles and
writes a phase marker on the manager, and the second verify checks the result.
Tests of the other phase are skipped, saying so.
"""

import json
import os
from pathlib import Path

import pytest
from busybox_image import busybox_image
from support.waiting import wait_for

testinfra_hosts = ["master1"]

IMAGE = "lab/busybox:1"
SERVICE = "web"
PHASE_FILE = "/var/lib/dockyard-test-phase"
NODES = ("master1", "agent1", "agent2")
TASK_FORMAT = "'{{.Node}} {{.CurrentState}} {{.Ports}}'"


def phase(host):
    marker = host.file(PHASE_FILE)
    return marker.content_string.strip() if marker.exists else "formed"


@pytest.fixture
def formed(host):
    if phase(host) != "formed":
        pytest.skip("checks the swarm before agent2 is removed")


@pytest.fixture
def agent2_removed(host):
    if phase(host) != "agent2-removed":
        pytest.skip("checks the swarm after side_effect removed agent2")


def node_host(host, name):
    return host.get_host(f"ansible://{name}", ansible_inventory=host.backend.ansible_inventory)


def nodes(host):
    ids = host.check_output("docker node ls --quiet").split()
    return {
        node["Description"]["Hostname"]: node
        for node in json.loads(host.check_output("docker node inspect " + " ".join(ids)))
    }


def inventory_labels(host, name):
    variables = node_host(host, name).ansible.get_variables()
    labels = variables.get("scheduler_master_node_labels", variables.get("scheduler_agent_node_labels", {}))
    return {key: str(value) for key, value in labels.items()}


def running_tasks(host):
    """(node, host port) of each running task of the test service."""
    lines = host.check_output(
        f"docker service ps {SERVICE} --filter desired-state=running --format {TASK_FORMAT}"
    ).splitlines()
    tasks = []
    for line in lines:
        node, state, *rest = line.split()
        if state != "Running":
            continue
        # *:30001->80/tcp
        port = " ".join(rest).split("->", maxsplit=1)[0].rsplit(":", 1)[1]
        tasks.append((node, int(port)))
    return tasks


def wait_for_tasks(host, count, timeout=120):
    return wait_for(
        lambda: tasks if len(tasks := running_tasks(host)) == count else None,
        timeout,
        3,
        f"{count} running tasks of {SERVICE}",
        detail=lambda: f"{SERVICE} runs {running_tasks(host)}",
    )


def test_all_three_nodes_ready_with_the_inventory_labels(host, formed):
    listed = nodes(host)
    assert sorted(listed) == sorted(NODES)
    for name, node in listed.items():
        assert node["Status"]["State"] == "ready", name
        assert node["Spec"]["Availability"] == "active", name
        assert node["Spec"]["Labels"] == inventory_labels(host, name), name
    assert listed["master1"]["Spec"]["Role"] == "manager"
    assert listed["agent1"]["Spec"]["Role"] == listed["agent2"]["Spec"]["Role"] == "worker"
    assert host.check_output("docker node ls --format '{{.Hostname}} {{.Status}}'").count("Ready") == 3


def test_cluster_settings_and_autolock(host, formed):
    spec = json.loads(host.check_output("docker info --format '{{json .Swarm.Cluster.Spec}}'"))
    assert spec["Orchestration"]["TaskHistoryRetentionLimit"] == 3
    assert spec["Dispatcher"]["HeartbeatPeriod"] == 3_000_000_000
    assert spec["CAConfig"]["NodeCertExpiry"] == 2160 * 3600 * 1_000_000_000
    assert spec["EncryptionConfig"]["AutoLockManagers"] is True


def test_unlock_key_is_kept_on_the_controller_mode_0600(host, formed):
    cluster_id = host.check_output("docker info --format '{{.Swarm.Cluster.ID}}'")
    # The environment is named after Molecule's inventory directory (dockyard_environment's default).
    environment = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent.name
    key_file = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets" / environment / "scheduler"
    key_file = key_file / f"swarm-{cluster_id}.unlock-key"
    assert key_file.exists()
    assert key_file.stat().st_mode & 0o777 == 0o600
    live_key = host.run("docker swarm unlock-key --quiet").stdout.strip()
    # Compared without printing either key on failure.
    assert (key_file.read_text().strip() == live_key) is True


def test_service_runs_where_the_label_says_with_host_mode_ports(host, formed):
    for name in NODES:
        build_test_image(node_host(host, name))
    if host.run(f"docker service inspect {SERVICE}").rc != 0:
        host.check_output(
            f"docker service create --detach --name {SERVICE} --replicas 3 "
            f"--constraint node.labels.tier==app --publish mode=host,target=80 {IMAGE}"
        )
    tasks = wait_for_tasks(host, 3)
    assert {node for node, _port in tasks} == {"agent1", "agent2"}
    for node, port in tasks:
        assert host.check_output(f"curl --silent --fail http://{node}:{port}/") == "served by the swarm"


def test_agent2_is_gone_and_two_nodes_remain(host, agent2_removed):
    listed = nodes(host)
    assert sorted(listed) == ["agent1", "master1"]
    assert all(node["Status"]["State"] == "ready" for node in listed.values())
    assert node_host(host, "agent2").check_output("docker info --format '{{.Swarm.LocalNodeState}}'") == "inactive"


def test_tasks_moved_to_the_remaining_labelled_node(host, agent2_removed):
    tasks = wait_for_tasks(host, 3)
    assert {node for node, _port in tasks} == {"agent1"}
    for node, port in tasks:
        assert host.check_output(f"curl --silent --fail http://{node}:{port}/") == "served by the swarm"


def test_labels_follow_the_inventory_edit(host, agent2_removed):
    assert nodes(host)["agent1"]["Spec"]["Labels"] == {"zone": "c", "tier": "app", "disk": "ssd"}


def build_test_image(node):
    node.check_output(busybox_image(IMAGE, ["/bin/httpd", "-f", "-p", "80", "-h", "/www"], index="served by the swarm"))
