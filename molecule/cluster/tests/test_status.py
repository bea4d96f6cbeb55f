"""playbooks/status.yml on the running cluster: one screen, and the same as JSON, that names every quorum's leader,
every router's reload count and a deployed app serving all its instances; a stopped ZooKeeper member shows."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from cluster import COORDINATION, NODES, SECRETS, lab_host, node_exec, zk_mode
from deploying import ROOT, running_app
from support.waiting import wait_for

APP = "status"
SERVICE_PORT = 10093


def status(workdir: Path) -> tuple:
    """(the screen's lines, the JSON document) of one run of status.yml."""
    document = workdir / "status.json"
    done = subprocess.run(
        [
            *("ansible-playbook", "-i", str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)),
            *(str(ROOT / "playbooks" / "status.yml"), "-e", f"status_json={document}"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert oct(document.stat().st_mode & 0o777) == "0o600"
    return done.stdout, json.loads(document.read_text())


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("status"), APP, SERVICE_PORT, "s1") as workdir:
        yield workdir


def test_status_names_each_leader_every_router_and_the_app_serving(deployed):
    screen, found = status(deployed)
    assert found["environment"] == SECRETS.name
    assert {node["name"] for node in found["nodes"]} == set(NODES)
    manager = next(node for node in found["nodes"] if node["name"] == "manager1")
    assert {"scheduler_masters", "routers"} <= set(manager["roles"]), manager
    assert not {"zookeeper", "consul_servers"} & set(manager["roles"]), manager

    zookeeper = found["zookeeper"]
    assert zookeeper["quorum"] and zookeeper["leader"] in COORDINATION, zookeeper
    assert sorted(member["mode"] for member in zookeeper["members"]) == ["follower", "follower", "leader"]
    consul = found["consul"]
    assert consul["quorum"] and consul["leader"] in COORDINATION, consul
    assert [server["node"] for server in consul["servers"] if server["leader"]] == [consul["leader"]]
    swarm = found["swarm"]
    assert swarm["quorum"] and swarm["leader"] and swarm["error"] is None, swarm
    assert len(swarm["managers"]) == 1 and len(swarm["workers"]) == 3, swarm

    assert {router["node"] for router in found["routers"] if router["reporting"]} == set(NODES), found["routers"]
    assert all(isinstance(router["reloads"], int) and router["reloads"] >= 0 for router in found["routers"])

    app = next(app for app in found["apps"] if app["name"] == APP)
    assert (app["serving"], app["desired"]) == (3, 3), app
    assert [(version["serving"], version["replicas"]) for version in app["versions"]] == [(3, 3)], app
    for line in (
        f"ZooKeeper: quorum, leader {zookeeper['leader']}",
        f"Consul: quorum, leader {consul['leader']}",
        f"{APP}: 3/3 serving, live version {app['version']}",
    ):
        assert line in screen, screen


def test_a_stopped_zookeeper_member_shows_and_the_rest_is_still_reported(deployed):
    before = status(deployed)[1]
    follower = next(member["node"] for member in before["zookeeper"]["members"] if member["mode"] == "follower")
    node_exec(follower, "systemctl stop zookeeper")
    try:
        found = status(deployed)[1]
    finally:
        node_exec(follower, "systemctl start zookeeper")
        back = lab_host(follower)
        wait_for(lambda: zk_mode(back, "127.0.0.1") == "follower", 60, 1, what=f"{follower} back in the ensemble")
    modes = {member["node"]: member["mode"] for member in found["zookeeper"]["members"]}
    assert modes[follower] == "no answer", modes
    assert found["zookeeper"]["quorum"], "two of three members still make a quorum"
    assert found["consul"]["quorum"] and any(app["name"] == APP for app in found["apps"])
