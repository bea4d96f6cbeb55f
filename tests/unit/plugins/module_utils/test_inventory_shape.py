# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inventory's shape (module_utils/_inventory_shape.py): what site.yml refuses or warns about before it changes
anything, and the contract with the roles whose defaults and names the check mirrors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.dockyard.platform.plugins.module_utils._inventory_shape import (
    INVENTORY_NAME,
    LISTENERS,
    MAX_NODE_NAME,
    PLATFORM_GROUPS,
    POLICY_NAME_REFUSED,
    QUORUMS,
    REQUIRED,
    VARIABLES,
    check,
    needed_variables,
)
from hypothesis import given
from hypothesis import strategies as st

ROLES = Path(__file__).resolve().parents[4] / "roles"


def cluster(**changes) -> dict:
    """molecule/cluster's shape: a master, three agents; coordination on the agents; every node a router."""
    groups = {
        "zookeeper": ["agent1", "agent2", "agent3"],
        "consul_servers": ["agent1", "agent2", "agent3"],
        "scheduler_masters": ["manager1"],
        "scheduler_agents": ["agent1", "agent2", "agent3"],
        "docker_hosts": ["manager1", "agent1", "agent2", "agent3"],
        "routers": ["manager1", "agent1", "agent2", "agent3"],
    }
    groups.update(changes)
    return groups


def everything(*hosts: str) -> dict:
    """Every component on every host: the first host the manager, the others agents, all in every other group."""
    return {name: list(hosts) for name in PLATFORM_GROUPS} | {
        "scheduler_masters": list(hosts[:1]),
        "scheduler_agents": list(hosts[1:]),
    }


def about(messages, *words: str) -> list:
    return [message for message in messages if all(word in message for word in words)]


# -- the contract with the roles ------------------------------------------------------------------------------------
def role_defaults(role: str) -> dict:
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_each_variable_has_its_role_s_default(name):
    variable = VARIABLES[name]
    defaults = role_defaults(variable.role)
    assert name in defaults, f"{name} is not an input of the {variable.role} role"
    if variable.default is INVENTORY_NAME:
        assert defaults[name] == "{{ inventory_hostname }}"
    elif variable.default is not None:
        assert defaults[name] == variable.default


def test_listeners_read_only_known_variables():
    for listener in LISTENERS:
        for name in (listener.port, listener.address, listener.when):
            if isinstance(name, str) and name.startswith(("consul_", "zookeeper_", "registry_", "docker_", "haproxy_")):
                assert name in VARIABLES, f"{listener.name} reads {name}, which the check does not template"


def test_the_policy_names_checked_are_the_ones_the_consul_role_makes():
    made = (ROLES / "consul" / "vars" / "main.yml").read_text()
    assert "'name': 'registrator-' ~ node | regex_replace(_consul_policy_name_refused, '_')," in made
    assert "'name': 'router-' ~ node | regex_replace(_consul_policy_name_refused, '_')," in made
    assert f'_consul_policy_name_refused: "{POLICY_NAME_REFUSED.pattern}"' in made


def test_only_the_variables_of_a_host_s_groups_are_templated():
    groups = cluster(registry=["manager1"])
    manager = needed_variables(groups, "manager1")
    assert "registry_port" in manager and "haproxy_http_port" in manager and "consul_https_port" in manager
    assert "zookeeper_client_port" not in manager and "consul_registrator_nodes" not in manager
    assert "registry_port" not in needed_variables(groups, "agent1")
    assert needed_variables(groups, "stranger") == ()


# -- groups ---------------------------------------------------------------------------------------------------------
def test_the_cluster_shape_and_the_lab_shape_pass_without_a_word():
    assert check(cluster(), {}).errors == () and check(cluster(), {}).warnings == ()
    lab = everything("lab-node1", "lab-node2", "lab-node3") | {
        "scheduler_masters": ["lab-node1"],
        "scheduler_agents": ["lab-node2", "lab-node3"],
        "registry": ["lab-node1"],
    }
    assert check(lab, {}).errors == () and check(lab, {}).warnings == ()


@pytest.mark.parametrize("group", sorted(REQUIRED))
def test_an_empty_or_missing_required_group_is_named(group):
    emptied = cluster(**{group: []})
    missing = {name: hosts for name, hosts in cluster().items() if name != group}
    for groups in (emptied, missing):
        (error,) = about(check(groups, {}).errors, f"group {group} is empty or missing")
        assert "put" in error


def test_registry_and_agents_may_be_empty():
    findings = check(
        cluster(scheduler_agents=[], registry=[]) | {"zookeeper": ["manager1"], "consul_servers": ["manager1"]}, {}
    )
    assert findings.errors == ()


@pytest.mark.parametrize(
    ("size", "survives", "instead"), [(2, "0 failures", "1"), (4, "1 failure,", "3"), (6, "2 failures", "5")]
)
@pytest.mark.parametrize("group", sorted(QUORUMS))
def test_an_even_quorum_is_warned_with_the_failures_it_survives(group, size, survives, instead):
    members = [f"agent{number}" for number in range(1, size + 1)]
    groups = cluster(**{group: members}) | {
        "scheduler_agents": [] if group == "scheduler_masters" else members,
        "docker_hosts": ["manager1", *members],
        "routers": ["manager1", *members],
    }
    findings = check(groups, {})
    assert findings.errors == ()
    (warning,) = about(findings.warnings, f"group {group} has {size} hosts")
    assert f"survives {survives}" in warning and f"no more than with {instead};" in warning


def test_a_host_in_both_scheduler_groups_is_refused():
    errors = check(cluster(scheduler_agents=["manager1", "agent1", "agent2", "agent3"]), {}).errors
    (error,) = about(errors, "host manager1 is in both scheduler_masters and scheduler_agents")
    assert "scheduler_masters only" in error


def test_a_scheduler_node_without_docker_is_refused():
    errors = check(cluster(docker_hosts=["agent1", "agent2", "agent3"]), {}).errors
    assert about(errors, "host manager1 is in scheduler_masters but not in docker_hosts")


# -- routers --------------------------------------------------------------------------------------------------------
def test_no_router_is_warned_and_not_refused():
    findings = check(cluster(routers=[]), {})
    assert findings.errors == ()
    assert about(findings.warnings, "group routers is empty", "no HAProxy routes to them")


def test_an_edge_router_is_explained():
    findings = check(cluster(routers=["manager1", "agent1", "agent2", "agent3", "edge1"]), {})
    assert findings.errors == ()
    (warning,) = findings.warnings
    assert "host edge1 is a router but not a scheduler node" in warning and "runs no app task" in warning


def test_routers_none_of_them_a_scheduler_node_are_explained():
    warnings = check(cluster(routers=["edge1", "edge2"]), {}).warnings
    assert len(about(warnings, "is a router but not a scheduler node")) == 2
    assert about(warnings, "no scheduler node is a router (routers: edge1, edge2)", "service port on its own host")


# -- host names -----------------------------------------------------------------------------------------------------
def test_capitals_underscores_and_dashes_work_everywhere():
    findings = check(everything("Agent_2", "web-01", "DB1") | {"registry": ["web-01", "DB1"]}, {})
    assert findings.errors == () and findings.warnings == ()


def test_a_registry_host_with_an_underscore_is_warned_about_image_names():
    (warning,) = check(cluster(registry=["Agent_2"]), {}).warnings
    assert "host Agent_2: images are named after the first registry host" in warning


@pytest.mark.parametrize("name", ["qa-node1.example.internal", "node.1"])
def test_a_dot_in_a_scheduler_node_s_name_passes_as_the_consul_role_turns_it_into_an_underscore(name):
    groups = cluster(
        scheduler_agents=[name, "agent2", "agent3"],
        docker_hosts=["manager1", name, "agent2", "agent3"],
        routers=["manager1", name, "agent2", "agent3"],
    )
    assert check(groups, {}).errors == ()


def test_names_that_meet_once_dots_become_underscores_are_refused_for_consul():
    groups = cluster(routers=["manager1", "web.1", "web_1"])
    assert about(check(groups, {}).errors, "hosts web.1 and web_1", "router-web_1 and router-web_1")


def test_a_policy_name_over_consul_s_limit_is_refused():
    long_name = "n" * 130
    groups = cluster(routers=["manager1", long_name])
    assert about(check(groups, {}).errors, f"host {long_name}: the consul role makes the ACL policy", "128")


def test_names_that_differ_only_in_case_are_refused_for_consul():
    groups = cluster(
        scheduler_agents=["DB1", "db1", "agent3"],
        docker_hosts=["manager1", "DB1", "db1", "agent3"],
        routers=["manager1"],
    )
    errors = check(groups, {}).errors
    assert about(errors, "hosts DB1 and db1", "registrator-DB1 and registrator-db1", "ignoring case")
    assert about(errors, "hosts DB1 and db1 have the Consul node names 'DB1' and 'db1'")


def test_consul_node_names_are_read_from_the_inventory():
    errors = check(cluster(), {"agent2": {"consul_node_name": "AGENT1"}}).errors
    assert about(errors, "hosts agent1 and agent2 have the Consul node names 'agent1' and 'AGENT1'")


def test_a_scheduler_node_name_that_the_router_reports_cannot_carry_is_refused():
    def errors(name):
        groups = cluster(scheduler_agents=[name], docker_hosts=["manager1", name], routers=["manager1"])
        return about(check(groups, {}).errors, f"host {name}: its registrator's node name")

    assert errors("n" * MAX_NODE_NAME) == []
    (error,) = errors("n" * (MAX_NODE_NAME + 1))
    assert "<node>-<Swarm task ID>" in error


def test_daemon_node_names_set_in_the_inventory_are_checked():
    values = {"agent1": {"registrator_node_name": "-agent1"}, "agent2": {"haproxy_reporter_node_name": "agent 2"}}
    errors = check(cluster(), values).errors
    assert about(errors, "host agent1: its registrator's node name '-agent1' (registrator_node_name")
    assert about(errors, "host agent2: its router reporter's node name 'agent 2' (haproxy_reporter_node_name")
    quiet = {"agent2": {"haproxy_reporter_node_name": "agent 2", "haproxy_reporter_enabled": False}}
    assert check(cluster(), quiet).errors == ()


def test_a_common_name_longer_than_x509_allows_is_refused_unless_a_certificate_is_given():
    name = "r" * 65
    assert about(check(cluster(registry=[name]), {}).errors, f"host {name}: the registry role", "64 characters (65")
    assert check(cluster(registry=[name]), {name: {"registry_tls_cert": "-----BEGIN CERTIFICATE-----"}}).errors == ()
    assert check(cluster(registry=["r" * 64]), {}).errors == ()
    remote = cluster(docker_hosts=[*cluster()["docker_hosts"], name])
    assert check(remote, {}).errors == ()
    assert about(
        check(remote, {name: {"docker_host_remote_api": True}}).errors, f"host {name}: with docker_host_remote_api"
    )


# -- ports ----------------------------------------------------------------------------------------------------------
def test_two_components_on_one_port_of_a_host_are_refused_naming_both():
    (error,) = check(cluster(), {"agent1": {"haproxy_http_port": 2181}}).errors
    assert error.startswith("host agent1: port 2181 is bound by zookeeper_client_port on 0.0.0.0 and haproxy_http_port")


def test_a_port_shared_on_hosts_that_do_not_run_both_is_fine():
    assert check(cluster(), {"manager1": {"haproxy_http_port": 2181}}).errors == ()


def test_a_component_s_port_is_checked_against_the_fixed_ports_of_consul():
    (error,) = check(cluster(), {"agent1": {"zookeeper_client_port": 8300}}).errors
    assert "port 8300 is bound by Consul's server RPC port on its own address and zookeeper_client_port" in error
    ensemble = cluster(zookeeper=["manager1", "agent1", "agent2"])
    assert check(ensemble, {"manager1": {"zookeeper_client_port": 8300}}).errors == ()  # a client agent there
    assert check(ensemble, {"manager1": {"zookeeper_client_port": 8301}}).errors != ()


@pytest.mark.parametrize(
    ("values", "clash"),
    [
        ({"haproxy_management_port": 8559}, True),  # both on 127.0.0.1
        ({"haproxy_management_port": 8559, "haproxy_management_address": "10.0.0.5"}, False),
        ({"haproxy_management_port": 8301}, False),  # loopback beside Consul's Serf on the host's own address
        ({"haproxy_management_port": 8301, "haproxy_management_address": "10.0.0.5"}, True),  # it may be that one
        ({"haproxy_management_port": 8559, "renderer_status_address": "0.0.0.0"}, True),
        ({"consul_http_port": 8404}, False),  # the loopback HTTP API is off
        ({"consul_http_port": 8404, "consul_http_loopback": True}, True),
    ],
)
def test_addresses_decide_whether_two_binds_clash(values, clash):
    assert bool(check(cluster(), {"manager1": values}).errors) == clash


def test_a_value_that_is_no_port_is_refused_and_a_port_as_text_is_taken():
    errors = check(
        cluster(), {"agent1": {"zookeeper_peer_port": 80000}, "agent2": {"zookeeper_peer_port": True}}
    ).errors
    assert about(errors, "host agent1: zookeeper_peer_port is 80000, not a port number")
    assert about(errors, "host agent2: zookeeper_peer_port is True, not a port number")
    assert check(cluster(), {"agent1": {"zookeeper_peer_port": "2889"}}).errors == ()
    (error,) = check(cluster(), {"agent1": {"zookeeper_peer_port": "2181"}}).errors
    assert "port 2181" in error


def test_the_engine_s_metrics_address_and_remote_api_take_their_ports():
    values = {"manager1": {"docker_host_metrics_address": "127.0.0.1:8404"}}
    assert about(check(cluster(), values).errors, "port 8404", "docker_host_metrics_address on 127.0.0.1")
    bad = check(cluster(), {"manager1": {"docker_host_metrics_address": "localhost"}}).errors
    assert about(bad, "docker_host_metrics_address is 'localhost', not <address>:<port>")
    remote = {"manager1": {"docker_host_remote_api": True, "docker_host_remote_api_port": 80}}
    assert about(check(cluster(), remote).errors, "port 80 is bound by docker_host_remote_api_port")
    assert check(cluster(), {"manager1": {"docker_host_remote_api_port": 80}}).errors == ()


def test_a_service_port_range_holding_another_component_s_port_is_refused():
    values = {"agent1": {"haproxy_service_port_range": {"first": "2000", "last": "3000"}}}
    (error,) = check(cluster(), values).errors
    assert error.startswith("host agent1: haproxy_service_port_range 2000-3000 holds the ports 2181 (zookeeper")
    assert "2888 (zookeeper_peer_port on 0.0.0.0)" in error
    bad = check(cluster(), {"agent1": {"haproxy_service_port_range": {"first": 3000, "last": 2000}}}).errors
    assert about(bad, "host agent1: haproxy_service_port_range is", "not {first: N, last: M}")


PORT_VARIABLES = sorted({listener.port for listener in LISTENERS if isinstance(listener.port, str)})
ALL_ON = {"consul_http_loopback": True, "docker_host_remote_api": True}


@given(
    st.lists(st.sampled_from(PORT_VARIABLES), min_size=2, max_size=2, unique=True),
    st.integers(min_value=20000, max_value=65535),
)
def test_any_two_port_variables_given_one_port_on_a_host_running_both_are_refused(pair, port):
    values = {"node1": {**ALL_ON, pair[0]: port, pair[1]: port}}
    errors = check(everything("node1"), values).errors
    (error,) = about(errors, f"port {port} is bound by")
    assert pair[0] in error and pair[1] in error


NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True)


@given(
    st.lists(NAMES, min_size=1, max_size=9, unique_by=str.lower),
    st.integers(min_value=0, max_value=4),
    st.integers(min_value=0, max_value=4),
    st.integers(min_value=0, max_value=4),
)
def test_any_odd_sized_coordination_groups_of_usable_names_pass(names, zookeeper, consul, masters):
    """Any odd-sized, non-empty ensemble, server group and manager group of names with capitals, '_' and '-' passes."""

    def odd(count):
        size = min(2 * count + 1, len(names))
        return names[: size - (size + 1) % 2]

    groups = {
        "zookeeper": odd(zookeeper),
        "consul_servers": odd(consul),
        "scheduler_masters": odd(masters),
        "docker_hosts": names,
        "routers": names,
    }
    groups["scheduler_agents"] = [name for name in names if name not in groups["scheduler_masters"]]
    findings = check(groups, {})
    assert findings.errors == ()
    assert all(len(groups[name]) % 2 for name in QUORUMS)
    assert findings.warnings == ()


@given(st.sets(st.sampled_from(sorted(REQUIRED)), min_size=1))
def test_any_empty_required_group_is_named(emptied):
    errors = check(cluster(**{name: [] for name in emptied}), {}).errors
    named = {name for name in REQUIRED if about(errors, f"group {name} is empty or missing")}
    assert named == emptied
