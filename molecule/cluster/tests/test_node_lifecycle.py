"""playbooks/remove_node.yml and add_node.yml on the running cluster.

An app runs three instances on the agents (one on each, at most two per node), and clients of every kind load it
through manager1's HAProxy, a router that stays, while remove_node.yml takes agent3 (a Swarm worker, a ZooKeeper
member and a Consul server) out: no request fails, the app keeps its three instances, and agent3 is gone from the
swarm, the Consul Raft configuration and the serving ZooKeeper members. While it is out, removing it again changes
nothing, and removing agent2 too is refused (the ZooKeeper and Consul majorities, room for the replicas).
add_node.yml then brings agent3 back into every quorum, its router answering, changing nothing on the other nodes.
A name outside the inventory and the only manager are refused up front. Refusals change nothing.

Tests run in file order and build on each other; the fixture brings agent3 back and removes the app whatever
happened, so the cluster is left as it was found.
"""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from cluster import COORDINATION, consul_api, consul_token, lab_host, management_token, node_address, node_exec, zk_mode
from deploying import ROOT, PlaybookRun, app_options, build_image, containers, deploy
from load import KINDS, Load
from support.waiting import wait_for

APP = "lifecycle"
SERVICE_PORT = 10097
NODE = "agent3"
PLAYBOOKS = ROOT / "playbooks"


class Run(PlaybookRun):
    """One run of a node playbook."""

    def __init__(self, done: subprocess.CompletedProcess, duration: float):
        super().__init__(done, duration)
        report = self.report
        self.changed_hosts = {host for host, stats in report["stats"].items() if stats["changed"]}
        self.changed = sum(stats["changed"] for stats in report["stats"].values())
        self.failures = [
            result.get("msg", "")
            for play in report["plays"]
            for task in play["tasks"]
            for result in task["hosts"].values()
            if result.get("failed") or result.get("unreachable")
        ]

    def message(self) -> str:
        return " | ".join(str(failure) for failure in self.failures) or self.output


def run(playbook: str, node: str) -> Run:
    command = ["ansible-playbook", "-i", str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)]
    command += [str(PLAYBOOKS / playbook), "-e", f"node={node}"]
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, env=env)
    return Run(done, time.monotonic() - started)


def swarm_nodes() -> dict:
    """{hostname: "<status> <availability>"} as the manager lists the swarm's nodes."""
    listed = node_exec("manager1", "docker node ls --format '{{.Hostname}} {{.Status}} {{.Availability}}'").stdout
    return {line.split()[0]: " ".join(line.split()[1:]) for line in listed.splitlines()}


def raft() -> tuple:
    """(sorted voters, the leader) of the Consul Raft configuration, read through manager1's client agent."""
    status, body = consul_api(lab_host("manager1"), "operator/raft/configuration", management_token())
    assert status == 200, body
    servers = json.loads(body)["Servers"]
    leaders = [server["Node"] for server in servers if server["Leader"]]
    return sorted(server["Node"] for server in servers if server["Voter"]), leaders[0] if len(leaders) == 1 else None


def zookeeper_modes() -> dict:
    manager = lab_host("manager1")
    return {member: zk_mode(manager, member) for member in COORDINATION}


def quorums() -> tuple:
    """Everything a refused run must leave as it was."""
    voters, leader = raft()
    return swarm_nodes(), voters, leader is not None, zookeeper_modes()


def replicas() -> str:
    listed = node_exec(
        "manager1", f"docker service ls --filter label=org.dockyard.app={APP} --format '{{{{.Replicas}}}}'"
    )
    return listed.stdout.split()[0] if listed.stdout.split() else "no service"


def instances() -> list:
    """The nodes of the app's instances in Consul (dockyard/instances/<node>/<app>/<task>)."""
    status, body = consul_api(lab_host("manager1"), "kv/dockyard/instances/?keys", consul_token("deployer"))
    keys = json.loads(body) if status == 200 else []
    return sorted(key.split("/")[2] for key in keys if key.split("/")[3:4] == [APP])


def router_report(node: str) -> int:
    status, _body = consul_api(lab_host("manager1"), f"kv/dockyard/routers/{node}", consul_token("deployer"))
    return status


def answers(router: str) -> bool:
    return Load([router], SERVICE_PORT).send("fresh", router, "GET", "/cgi-bin/app")


def plays(playbook: str) -> list:
    return yaml.safe_load((PLAYBOOKS / playbook).read_text())


def role_plays(playbook: str) -> list:
    """(hosts, roles) of each play that runs roles, in order."""
    return [(play["hosts"], [role["role"] for role in play["roles"]]) for play in plays(playbook) if "roles" in play]


def imported_task_files(playbook: str) -> set:
    return {
        task["ansible.builtin.import_tasks"]
        for play in plays(playbook)
        for task in play.get("tasks", [])
        if "ansible.builtin.import_tasks" in task
    }


@pytest.fixture(scope="module")
def state():
    """What the tests found out, so the teardown knows whether agent3 must be brought back."""
    return {"removed": False, "back": False}


@pytest.fixture(scope="module")
def app(tmp_path_factory, state):
    """The app, one instance on each agent; at the end agent3 is back (whatever happened) and the app is gone."""
    workdir = tmp_path_factory.mktemp("lifecycle")
    build_image()
    spread = {"constraints": ["node.hostname!=manager1", "max_per_node=2"]}
    deploy(workdir, {**app_options(APP, SERVICE_PORT, {"APP_VERSION": "n1"}, "4s"), **spread}).assert_ok()
    yield workdir
    try:
        if state["removed"] and not state["back"]:
            restored = run("add_node.yml", NODE)
            assert restored.returncode == 0, restored.message()
    finally:
        deploy(workdir, {"name": APP, "state": "absent"}).assert_ok()


def test_add_node_runs_site_yml_roles_in_the_same_order_on_the_node():
    site, added = role_plays("site.yml"), role_plays("add_node.yml")
    assert [play[1] for play in added] == [play[1] for play in site]
    for (site_hosts, roles), (added_hosts, same_roles) in zip(site, added, strict=True):
        assert added_hosts.startswith(f"{site_hosts}:&") or f"'{site_hosts}:&" in added_hosts, (roles, added_hosts)
        assert same_roles == roles
    assert imported_task_files("site.yml") <= imported_task_files("add_node.yml")


def test_a_host_outside_the_inventory_is_refused_before_any_host_is_touched():
    refused = run("remove_node.yml", "nosuchhost")
    assert refused.returncode != 0
    assert "node must name one host of this inventory" in refused.message() and "nosuchhost" in refused.message()
    assert refused.changed == 0


def test_the_only_manager_is_refused_and_nothing_changes():
    before = quorums()
    refused = run("remove_node.yml", "manager1")
    print(f"refusal of manager1 took {refused.duration:.0f}s")
    assert refused.returncode != 0
    assert "manager1 is the only host of scheduler_masters" in refused.message(), refused.message()
    assert refused.changed == 0
    assert quorums() == before
    assert swarm_nodes()["manager1"] == "Ready Active"


def test_removing_agent3_under_load_keeps_the_instances_and_fails_no_request(app, state):
    assert containers(APP)[NODE], "no instance runs on agent3: the removal would drain nothing"
    manager1 = node_address("manager1")
    load = Load([manager1], SERVICE_PORT).start()
    time.sleep(3)  # every kind of client busy, slow requests in flight, before the drain starts
    removed = run("remove_node.yml", NODE)
    time.sleep(2)
    result = load.stop()
    state["removed"] = removed.returncode == 0
    print(f"remove_node.yml took {removed.duration:.0f}s: {result.summary()}")
    assert removed.returncode == 0, removed.message()
    assert not result.failures, result.summary()
    assert min(result.ok[kind] for kind in KINDS) > 0, result.summary()

    assert replicas() == "3/3"
    assert not containers(APP)[NODE]
    wait_for(lambda: len(instances()) == 3, 30, 1, what="three instances in Consul", detail=instances)
    assert NODE not in instances()
    assert NODE not in swarm_nodes()
    voters, leader = raft()
    assert voters == ["agent1", "agent2"] and leader in voters
    modes = zookeeper_modes()
    assert modes[NODE] == "not serving" and sorted(modes[m] for m in ("agent1", "agent2")) == ["follower", "leader"]
    assert router_report(NODE) == 404
    assert answers(manager1)


def test_removing_agent3_again_changes_nothing(app, state):
    if not state["removed"]:
        pytest.skip("agent3 was not removed")
    again = run("remove_node.yml", NODE)
    print(f"a second remove_node.yml of agent3 took {again.duration:.0f}s")
    assert again.returncode == 0, again.message()
    assert again.changed == 0
    assert NODE not in swarm_nodes()


def test_a_second_zookeeper_member_is_refused_while_the_first_is_out(app, state):
    if not state["removed"]:
        pytest.skip("agent3 was not removed")
    before = quorums()
    refused = run("remove_node.yml", "agent2")
    print(f"refusal of agent2 took {refused.duration:.0f}s: {refused.message()}")
    assert refused.returncode != 0
    message = refused.message()
    assert "ZooKeeper: without agent2, 1 of the 3 members of the static ensemble would serve (agent1)" in message
    assert "Consul: without agent2, 1 healthy server(s) would stay (agent1)" in message
    assert "Swarm: the service" in message and "hold only 2" in message, "two nodes cannot hold 3 at 2 per node"
    assert refused.changed == 0
    assert quorums() == before
    assert zookeeper_modes()["agent2"] in ("leader", "follower")


def test_add_node_brings_agent3_back_into_every_quorum(app, state):
    if not state["removed"]:
        pytest.skip("agent3 was not removed")
    added = run("add_node.yml", NODE)
    print(f"add_node.yml took {added.duration:.0f}s")
    assert added.returncode == 0, added.message()
    state["back"] = True
    assert added.changed_hosts == {NODE}, "a node that returns changes nothing on the others"
    assert swarm_nodes()[NODE] == "Ready Active"
    voters, leader = raft()
    assert voters == sorted(COORDINATION) and leader in voters
    assert sorted(zookeeper_modes().values()) == ["follower", "follower", "leader"]
    assert router_report(NODE) == 200
    wait_for(lambda: answers(node_address(NODE)), 30, 1, what="agent3's router answering for the app")
    assert replicas() == "3/3"
