"""Bad input fails (or warns) before anything changes: the roles run again from
here through the shared bad-input harness (molecule/shared/bad_input.py)
against the scenario's inventory plus bad variables or a bad inventory."""

import pytest
from bad_input import play_role, unchanged
from cluster import COORDINATION, lab_host

testinfra_hosts = ["manager1"]

WATCHED = " ".join(
    [
        "/etc/zookeeper/dockyard/zoo.cfg",
        "/var/lib/zookeeper/myid",
        "/etc/consul.d/dockyard.json",
        "/etc/consul.d/tls/agent.pem",
    ]
)


@pytest.fixture(autouse=True)
def nothing_changes():
    with unchanged([lab_host(member) for member in COORDINATION], WATCHED):
        yield


def test_empty_consul_server_group_fails_naming_the_hosts(tmp_path):
    run = play_role("consul", tmp_path, variables={"consul_server_group": "nobody"})
    run.assert_refused(
        "the server group 'nobody' (consul_server_group) is empty",
        "agent1, agent2, agent3, manager1 would have no server to join",
    )
    run.assert_changed_nothing()


def test_empty_zookeeper_group_fails_naming_the_hosts(tmp_path):
    run = play_role("zookeeper", tmp_path, variables={"zookeeper_group": "nobody"})
    run.assert_refused(
        "the group 'nobody' (zookeeper_group) is empty", "hosts in this play: agent1, agent2, agent3, manager1"
    )
    run.assert_changed_nothing()


def test_myid_collision_fails_naming_the_hosts(tmp_path):
    run = play_role("zookeeper", tmp_path, inventory="all:\n  hosts:\n    agent2:\n      zookeeper_myid: 1\n")
    run.assert_refused("myid 1 is claimed by agent1 and agent2")
    run.assert_changed_nothing()


@pytest.mark.parametrize(
    ("role", "group_variable"), [("zookeeper", "zookeeper_group"), ("consul", "consul_server_group")]
)
def test_even_sized_groups_warn(tmp_path, role, group_variable):
    pair = "all:\n  children:\n    pair:\n      hosts:\n        manager1:\n        agent1:\n"
    run = play_role(
        role, tmp_path, variables={group_variable: "pair"}, inventory=pair, hosts="pair", tasks_from="preflight"
    )
    run.assert_warned("[WARNING]", "has 2 members (manager1, agent1)", "survives no more failures")
    run.assert_changed_nothing()
