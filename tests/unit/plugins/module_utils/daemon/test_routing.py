"""The routing schema: the one gate between Consul data and configuration.

Named cases for each field, and Hypothesis properties: whatever text or JSON a
parser is given, what it accepts holds only characters that are inert in an
HAProxy configuration, and what it refuses raises RouteError (never anything
else).
"""

import json
import string

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.daemon import routing
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.routing import (
    Instance,
    RouteError,
    parse_address,
    parse_host,
    parse_instance,
    parse_name,
    parse_prefix,
    parse_route,
    validated,
)
from hypothesis import given, settings
from hypothesis import strategies as st

INERT = set(string.ascii_letters + string.digits + "-._~!&()*+,;=:@/%?[]")
PROPERTY = settings(max_examples=300, derandomize=True, deadline=None)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=16,
)
# Text built to look nearly right: a valid start, one hostile character, anything after.
near_misses = st.builds(
    lambda head, bad, tail: head + bad + tail,
    st.sampled_from(["", "a", "shop.example.com", "10.0.0.1", "fe80::1", "/health"]),
    st.sampled_from(["\n", "\r", "\x00", " ", "%", '"', "#", "\\", "$", "{", "\u2028", "\u00e9"]),
    st.text(max_size=20),
)


# -- parse_route ----------------------------------------------------------------------
def test_a_full_route_parses_with_its_defaults_filled():
    route = parse_route(
        "shop",
        json.dumps(
            {
                "hosts": ["Shop.Example.com", "shop.example.com."],
                "service_port": 31000,
                "balance": "leastconn",
                "health": {"path": "/healthz", "expect_status": 204, "body_contains": "ok", "interval": "500ms"},
                "canary_weight": 10,
                "sticky": True,
                "idempotency_header": "Idempotency-Key",
            }
        ),
    )
    assert route.hosts == ("shop.example.com",)
    assert route.service_port == 31000 and route.balance == "leastconn" and route.sticky
    assert route.health == routing.Health("/healthz", 204, "ok", 500) and route.idempotency_header == "Idempotency-Key"
    minimal = parse_route("api", '{"service_port": 31001}')
    assert minimal.balance == "roundrobin" and minimal.health.path is None and minimal.canary_weight is None
    assert minimal.sticky is False and minimal.hosts == () and minimal.idempotency_header is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{not json", "route web: invalid JSON"),
        ("[1, 2]", "route web: expected a JSON object, got list"),
        ({"hosts": ["a.test"], "helth": {}}, "route web: unknown key(s) helth"),
        ({}, "route web: needs hosts or service_port"),
        ({"hosts": []}, "route web: needs hosts or service_port"),
        ({"hosts": "a.test"}, "route web: hosts: expected a list of at most 256 DNS names"),
        ({"hosts": ["a b.test"]}, "route web: hosts[0]: 'a b.test' is not a DNS name"),
        ({"hosts": ["ok.test", "-bad.test"]}, "route web: hosts[1]"),
        ({"hosts": ["a.test"], "service_port": 0}, "route web: service_port: expected a port number 1-65535, got 0"),
        ({"service_port": 70000}, "route web: service_port: expected a port number 1-65535, got 70000"),
        ({"service_port": "80"}, "route web: service_port: expected a port number"),
        ({"service_port": True}, "route web: service_port: expected a port number"),
        ({"service_port": 8404}, "route web: service_port: 8404 is one of the router's own ports"),
        ({"service_port": 1, "balance": "random"}, "route web: balance: expected one of roundrobin, leastconn, source"),
        ({"service_port": 1, "health": {"path": "health"}}, "route web: health.path: expected a path starting with /"),
        ({"service_port": 1, "health": {"path": "/a b"}}, "route web: health.path"),
        ({"service_port": 1, "health": {"path": "/a#b"}}, "route web: health.path"),
        ({"service_port": 1, "health": {"path": "/", "expect_status": 99}}, "route web: health.expect_status"),
        ({"service_port": 1, "health": {"path": "/", "expect_status": 600}}, "route web: health.expect_status"),
        ({"service_port": 1, "health": {"expect_status": 200}}, "route web: health.expect_status: needs health.path"),
        ({"service_port": 1, "health": {"path": "/", "interval": "50ms"}}, "route web: health.interval: must lie"),
        ({"service_port": 1, "health": {"path": "/", "interval": "2h"}}, "route web: health.interval: must lie"),
        ({"service_port": 1, "health": {"path": "/", "interval": 2}}, "route web: health.interval: expected a dur"),
        ({"service_port": 1, "health": {"path": "/", "timeout": "1s"}}, "route web: health: unknown key(s) timeout"),
        ({"service_port": 1, "health": "/health"}, "route web: health: expected an object"),
        ({"service_port": 1, "canary_weight": 101}, "route web: canary_weight: expected a percentage 0-100"),
        ({"service_port": 1, "canary_weight": 12.5}, "route web: canary_weight: expected a percentage 0-100"),
        ({"service_port": 1, "sticky": "yes"}, "route web: sticky: expected true or false"),
        ({"service_port": 1, "idempotency_header": "X-Key }"}, "route web: idempotency_header: expected an HTTP"),
        ({"service_port": 1, "idempotency_header": "-x"}, "route web: idempotency_header: expected an HTTP"),
        ({"service_port": 1, "health": {"body_contains": "ok"}}, "route web: health.body_contains: needs health.path"),
        (
            {"service_port": 1, "health": {"path": "/h", "body_contains": "all ok"}},
            "route web: health.body_contains: expected at most 128",
        ),
    ],
)
def test_an_invalid_route_names_the_app_and_the_field(spec, message):
    text = spec if isinstance(spec, str) else json.dumps(spec)
    with pytest.raises(RouteError) as caught:
        parse_route("web", text, reserved_ports=(80, 443, 8404))
    assert message in str(caught.value)


def test_app_names_are_checked():
    with pytest.raises(RouteError, match="app name"):
        parse_route("bad name", '{"service_port": 1}')


@PROPERTY
@given(st.one_of(st.text(max_size=80), near_misses, json_values))
def test_property_a_host_is_accepted_only_as_inert_dns_text(value):
    try:
        host = parse_host(value, "h")
    except RouteError:
        return
    assert set(host) <= set(string.ascii_lowercase + string.digits + ".-") and len(host) <= 253


@PROPERTY
@given(st.one_of(st.text(max_size=60), near_misses, json_values))
def test_property_an_address_is_accepted_only_as_a_plain_ip(value):
    try:
        address = parse_address(value, "a")
    except RouteError:
        return
    assert set(address) <= set(string.hexdigits + ":.") and "%" not in address


@PROPERTY
@given(st.one_of(st.text(max_size=120), near_misses, json_values))
def test_property_a_name_is_accepted_only_as_inert_text(value):
    try:
        name = parse_name(value, "n")
    except RouteError:
        return
    assert set(name) <= set(string.ascii_letters + string.digits + "_.-") and len(name) <= 100


@PROPERTY
@given(st.one_of(json_values, near_misses, st.text(max_size=100)), st.one_of(near_misses, st.text(max_size=20)))
def test_property_a_route_holds_only_inert_values(value, key):
    for app, text in (("web", value if isinstance(value, str) else json.dumps(value)), (key, '{"hosts": ["a.test"]}')):
        try:
            route = parse_route(app, text)
        except RouteError:
            continue
        words = [route.app, *route.hosts, route.balance, route.health.path or "/", route.idempotency_header or "h"]
        words.append(route.health.body_contains or "b")
        assert all(set(word) <= INERT for word in words), route


@PROPERTY
@given(
    st.one_of(st.text(max_size=40), near_misses, st.just("n1/web/t1")),
    st.one_of(json_values, st.fixed_dictionaries({"addr": near_misses, "port": st.integers(0, 70000)})),
)
def test_property_an_instance_holds_only_inert_values(key, value):
    try:
        instance = parse_instance(key, json.dumps(value))
    except RouteError:
        return
    words = [instance.node, instance.app, instance.task, instance.address, instance.version, instance.track]
    assert all(set(word) <= INERT for word in words), instance


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"addr": "fe80::1%x\nglobal\n    master-worker\nprogram pwn\n", "port": 80}, "addr"),
        ({"addr": "fe80::1%eth0", "port": 80}, "addr"),
        ({"addr": "10.0.0.1\n", "port": 80}, "addr"),
        ({"addr": "0.0.0.0", "port": 80}, "addr"),
        ({"addr": "10.0.0.1", "port": 80, "version": "v1\nbackend x"}, "version"),
        ({"addr": "10.0.0.1", "port": 80, "extra": 1}, r"unknown key\(s\) extra"),
    ],
)
def test_instances_the_review_wrote_are_refused_naming_the_field(document, field):
    with pytest.raises(RouteError, match=field):
        parse_instance("n1/web/t1", json.dumps(document))


@pytest.mark.parametrize("key", ["n1/web/t1\n", "n 1/web/t1", "n1/web", "n1/web/t1/x", "n1/-web/t1", "n1/web/"])
def test_instance_keys_outside_the_layout_are_refused(key):
    with pytest.raises(RouteError, match="instance"):
        parse_instance(key, '{"addr": "10.0.0.1", "port": 80}')


def test_a_trailing_newline_never_passes_a_pattern():
    for call in (
        lambda: parse_route("web\n", '{"service_port": 10000}'),
        lambda: parse_route("web", '{"hosts": ["evil\\n.example.com"]}'),
        lambda: parse_route("web", '{"service_port": 10000, "health": {"path": "/h\\n"}}'),
        lambda: parse_route("web", '{"service_port": 10000, "health": {"path": "/h", "interval": "2s\\n"}}'),
    ):
        with pytest.raises(RouteError):
            call()


def test_huge_values_are_refused_before_they_are_decoded():
    with pytest.raises(RouteError, match="more than 65536 bytes"):
        parse_route("web", json.dumps({"hosts": ["a.test"], "pad": "x" * 70000}))
    with pytest.raises(RouteError, match="hosts: expected a list of at most 256"):
        parse_route("web", json.dumps({"hosts": [f"h{n}.test" for n in range(257)]}))


def test_the_write_side_check_refuses_what_the_routers_would_skip():
    good = Instance(app="web", node="n1", task="t1", addr="10.0.0.1", port=80, version="registry:5000/web:git-1")
    assert validated(good) == good
    assert good.key("dockyard/") == "dockyard/instances/n1/web/t1"
    with pytest.raises(RouteError, match="version"):
        validated(Instance(app="web", node="n1", task="t1", addr="10.0.0.1", port=80, version="v 1"))


def test_service_ports_are_bounded_by_the_range_and_the_reserved_ports():
    assert parse_route("web", '{"service_port": 10000}', (80,), (10000, 19999)).service_port == 10000
    with pytest.raises(RouteError, match="outside the service port range 10000-19999"):
        parse_route("web", '{"service_port": 8501}', (80,), (10000, 19999))
    with pytest.raises(RouteError, match="one of the router's own ports"):
        parse_route("web", '{"service_port": 80}', (80,), (1, 65535))


@pytest.mark.parametrize(
    "value", ["dockyard", "/dockyard/", "dock yard/", "dockyard/\n", "a//", "../", "a/./", "x" * 200 + "/"]
)
def test_a_kv_prefix_is_key_safe_folders_ending_in_a_slash(value):
    with pytest.raises(RouteError, match="prefix"):
        parse_prefix(value, "prefix")
    assert parse_prefix("platform/dockyard/", "prefix") == "platform/dockyard/"
