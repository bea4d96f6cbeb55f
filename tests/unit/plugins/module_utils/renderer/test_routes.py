"""The routing table: weights, claims, bad instances skipped, server names, host lines."""

import json
from fractions import Fraction

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.routes import (
    RouteError,
    routing_table,
    share_of_canaries,
    track_weights,
)


def instance(addr="10.0.0.1", port=8080, track="stable", **extra):
    return json.dumps({"addr": addr, "port": port, "version": "v1", "track": track, **extra})


# -- weights --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stable", "canary", "percent"),
    [
        *[(1, 1, 10), (2, 1, 10), (3, 1, 25), (5, 2, 33), (7, 3, 1), (10, 1, 5), (1, 9, 1), (1, 9, 50)],
        *[(50, 3, 67), (3, 2, 99), (4, 4, 90), (2, 5, 50), (1, 1, 99), (9, 1, 99), (200, 1, 1)],
    ],
)
def test_canaries_get_their_share_as_exactly_as_integer_weights_allow(stable, canary, percent):
    stable_weight, canary_weight = track_weights(percent, stable, canary)
    assert 1 <= stable_weight <= 256 and 1 <= canary_weight <= 256, "a nonzero share never weighs 0"
    error = abs(share_of_canaries(stable_weight, canary_weight, stable, canary) - Fraction(percent, 100))
    # No other pair of per-track weights comes closer (brute force over all of them).
    target = percent / 100
    best = min(abs(c * canary / (s * stable + c * canary) - target) for s in range(1, 257) for c in range(1, 257))
    assert float(error) <= best + 1e-12


@pytest.mark.parametrize(("stable", "canary", "percent"), [(2, 1, 10), (1, 1, 50), (3, 1, 25), (9, 1, 10), (4, 2, 5)])
def test_common_splits_are_exact(stable, canary, percent):
    weights = track_weights(percent, stable, canary)
    assert share_of_canaries(*weights, stable, canary) == Fraction(percent, 100)


def test_weights_at_the_edges_and_without_a_split():
    assert track_weights(0, 3, 1) == (100, 0), "p=0: canaries stay but get no new traffic"
    assert track_weights(100, 3, 1) == (0, 100), "p=100: stable servers get no new traffic"
    assert track_weights(None, 3, 1) == (100, 100)
    assert track_weights(10, 0, 2) == (100, 100), "only canaries: the split does not apply"
    assert track_weights(10, 2, 0) == (100, 100)
    assert track_weights(10, 2, 1) == (9, 2)


# -- the table ------------------------------------------------------------------------
def test_routing_table_builds_backends_with_servers_and_weights():
    table = routing_table(
        [("web", json.dumps({"hosts": ["web.test"], "canary_weight": 10})), ("api", '{"service_port": 31000}')],
        [
            ("node-1/web/task1", instance(port=1)),
            ("node-2/web/task2", instance(port=2)),
            ("node-3/web/task3", instance(port=3, track="canary")),
            ("node-1/api/t9", instance(addr="fd00::1", port=4)),
            ("node-1/ghost/t", instance()),  # no route: ignored
        ],
        default_interval="2s",
    )
    assert table.errors == []
    assert [backend.name for backend in table.apps] == ["app_api", "app_web"]
    api, web = table.apps
    assert [(s.name, s.address, s.weight) for s in api.servers] == [("node-1-t9", "[fd00::1]:4", 100)]
    assert api.interval_ms == 2000
    assert [(s.name, s.weight) for s in web.servers] == [("node-1-task1", 9), ("node-2-task2", 9), ("node-3-task3", 2)]
    assert table.hosts == [("web.test", web)]
    assert table.service_ports == [(31000, api)]


def test_entries_from_tree_objects_are_accepted():
    class Entry:
        def __init__(self, key, value):
            self.key, self.value = key, value

    table = routing_table([Entry("web", '{"hosts": ["web.test"]}')], [Entry("n/web/t", instance())])
    assert table.apps[0].servers[0].name == "n-t"


def test_a_later_route_claiming_a_host_or_port_is_skipped_naming_both():
    table = routing_table(
        [
            ("alpha", '{"hosts": ["shared.test"], "service_port": 31000}'),
            ("beta", '{"hosts": ["other.test", "shared.test"]}'),
            ("gamma", '{"service_port": 31000}'),
            ("delta", '{"hosts": ["other.test"]}'),
        ],
        [],
    )
    assert [backend.app for backend in table.apps] == ["alpha", "delta"]
    assert table.errors == [
        "route beta: skipped, it claims host shared.test (taken by route alpha)",
        "route gamma: skipped, it claims service_port 31000 (taken by route alpha)",
    ]


def test_bad_routes_are_skipped_and_the_rest_kept():
    table = routing_table([("a", "{"), ("b", '{"hosts": ["b.test"]}'), ("c", '{"service_port": 99999}')], [])
    assert [backend.app for backend in table.apps] == ["b"]
    assert len(table.errors) == 2
    assert table.errors[0].startswith("route a: invalid JSON")
    assert table.errors[1].startswith("route c: service_port")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("n/web/bad", "{", "instance n/web/bad: invalid JSON"),
        ("n/web/bad", "[]", "instance n/web/bad: expected a JSON object"),
        ("n/web/bad", '{"port": 80}', "instance n/web/bad: addr: expected an IPv4 or IPv6 address"),
        ("n/web/bad", '{"addr": "host.test", "port": 80}', "instance n/web/bad: addr: expected an IPv4 or IPv6"),
        ("n/web/bad", '{"addr": "10.0.0.1", "port": 0}', "instance n/web/bad: port: expected a port number"),
        ("n/web/bad", '{"addr": "10.0.0.1", "port": "80"}', "instance n/web/bad: port"),
        ("n/web/bad", '{"addr": "10.0.0.1", "port": 80, "track": "beta"}', "instance n/web/bad: track"),
        ("n/web/bad", '{"addr": "10.0.0.1", "port": 80, "version": 2}', "instance n/web/bad: version"),
        ("n/web", instance(), "instance n/web: expected a key <node>/<app>/<task>"),
    ],
)
def test_bad_instances_are_skipped_with_an_error_and_the_backend_stays(key, value, message):
    table = routing_table([("web", '{"hosts": ["web.test"]}')], [(key, value), ("n/web/good", instance())])
    assert len(table.errors) == 1 and message in table.errors[0], table.errors
    assert [server.name for server in table.apps[0].servers] == ["n-good"]


def test_an_app_without_valid_instances_keeps_its_backend():
    table = routing_table([("web", '{"hosts": ["web.test"]}')], [("n/web/t", "{")])
    assert table.apps[0].name == "app_web" and table.apps[0].servers == []


def test_server_names_are_unique_and_contain_node_and_task():
    table = routing_table(
        [("web", '{"hosts": ["web.test"]}')],
        [("a-b/web/x", instance(port=1)), ("a/web/b-x", instance(port=2)), ("n/web/TASKID123", instance(port=3))],
    )
    names = [server.name for server in table.apps[0].servers]
    assert names == ["a-b-x", "a-b-x-2", "n-TASKID123"]


def test_the_oldest_claim_wins_whatever_the_names():
    shop = {"hosts": ["shop.example.com"], "service_port": 10080}
    thief = {"hosts": ["SHOP.example.com."], "service_port": 10081}
    table = routing_table([("aaa-evil", json.dumps(thief), 20), ("shop", json.dumps(shop), 10)], [])
    assert [backend.app for backend in table.apps] == ["shop"]
    assert table.errors == ["route aaa-evil: skipped, it claims host shop.example.com (taken by route shop)"]


def test_service_ports_outside_the_range_are_skipped():
    table = routing_table(
        [("in", '{"service_port": 10080}'), ("out", '{"service_port": 8559}')], [], service_port_range=[10000, 19999]
    )
    assert [backend.app for backend in table.apps] == ["in"]
    assert table.errors == ["route out: service_port: 8559 lies outside the service port range 10000-19999"]


def test_long_host_lists_are_cut_into_lines_haproxy_reads_whole():
    hosts = [f"h{number}.test" for number in range(40)]
    table = routing_table([("web", json.dumps({"hosts": hosts}))], [])
    lines = table.host_lines
    assert [len(group) for _backend, group in lines] == [16, 16, 8]
    assert [host for _backend, group in lines for host in group] == hosts


def test_the_default_interval_is_validated():
    with pytest.raises(RouteError, match="default health interval"):
        routing_table([], [], default_interval="fast")
