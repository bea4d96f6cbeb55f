"""Hostile routing data never becomes HAProxy configuration.

The router's real template (rendered by Ansible from the role) runs in the
renderer's template engine on generated Consul data, and every result goes
through the real `haproxy -c`. Hypothesis generates the data: valid routes and
instances, the same items with one field made hostile (control characters,
spaces, quotes, HAProxy keywords, IPv6 scope IDs, unicode), and arbitrary JSON
under arbitrary keys. The payloads found by the security review are named
regression cases, run through the real renderer daemon and HAProxy.

Examples per property: HYPOTHESIS_EXAMPLES (default 40; `make fuzz` raises it);
the seed is fixed (derandomize) unless HYPOTHESIS_RANDOM=1.
"""

from __future__ import annotations

import base64
import json
import os
import re
import string
import subprocess

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.brain import Brain
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.dependencies import PrefixDependency
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.template import Template
from haproxy_helpers import haproxy_binary, render_role_template, request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.waiting import wait_for

PREFIX = "d/"
PORT_RANGE = {"first": 10000, "last": 19999}
PROPERTY = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "40")),
    derandomize=os.environ.get("HYPOTHESIS_RANDOM") != "1",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


# -- the template and the check ---------------------------------------------------------
@pytest.fixture(scope="module")
def template(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hostile")
    variables = {
        "haproxy_kv_prefix": PREFIX,
        "haproxy_service_port_range": PORT_RANGE,
        "_haproxy_chroot": "",
        "_haproxy_user": "",
        "haproxy_log_target": "off",
        "haproxy_maxconn": 2000,
    }
    path = render_role_template(workdir, workdir / "haproxy.ctmpl", **variables)
    return Template("haproxy", path.read_text()), workdir


def render(template, routes, instances):
    """(configuration, skipped-data messages) for routes and instances: lists of (key, value, create index)."""
    brain = Brain()
    brain.remember(
        PrefixDependency(f"{PREFIX}routes/"), tuple((f"{PREFIX}routes/{k}", v, c) for k, v, c in sorted(routes))
    )
    brain.remember(
        PrefixDependency(f"{PREFIX}instances/"),
        tuple((f"{PREFIX}instances/{k}", v, c) for k, v, c in sorted(instances)),
    )
    execution = template.execute(brain)
    assert execution.error is None, execution.error
    assert execution.complete
    return execution.output, execution.warnings


def haproxy_check(workdir, text: str) -> None:
    path = workdir / "candidate.cfg"
    path.write_text(text)
    result = subprocess.run([haproxy_binary(), "-c", "-f", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:] + "\n" + text[-3000:]


# The lines that routing data produces; every other line must be one the template has without any data.
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_HOST = r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?"
DATA_LINES = [
    re.compile(p)
    for p in (
        rf"    use_backend app_{_NAME} if \{{ var\(txn\.host\) -m str {_HOST}(?: {_HOST}){{0,15}} \}}",
        r"frontend port_1\d{4}",
        r"    # The service port of app [A-Za-z0-9_.-]+, on every router\.",
        r"    bind 0\.0\.0\.0:1\d{4}",
        rf"    default_backend app_{_NAME}",
        rf"backend app_{_NAME}",
        r"    # app [A-Za-z0-9_.-]+: \d+ instance\(s\)",
        r"    balance (?:roundrobin|leastconn|source)",
        r"    option httpchk",
        rf"    http-check send meth GET uri /[A-Za-z0-9\-._~!&()*+,;=:@/%?]* ver HTTP/1\.1 hdr Host {_NAME}",
        r"    http-check expect status [1-5]\d\d",
        rf"    cookie DOCKYARD_app_{_NAME} insert indirect nocache",
        r"    default-server check inter \d+ms fastinter \d+ms downinter \d+ms rise \d+ fall \d+ observe layer7"
        r" error-limit \d+ on-error fastinter",
        rf"    server {_NAME} (?:\d{{1,3}}(?:\.\d{{1,3}}){{3}}|\[[0-9a-f:.]+\]):\d{{1,5}} weight \d{{1,3}}"
        rf"(?: cookie {_NAME})?",
        r"",
    )
]


def assert_only_known_lines(output: str, empty: str) -> None:
    static = set(empty.splitlines())
    for line in output.splitlines():
        assert line in static or any(p.fullmatch(line) for p in DATA_LINES), f"unexpected line {line!r}"


# -- strategies -------------------------------------------------------------------------
labels = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
dns_names = st.builds(lambda parts: ".".join(parts) + ".test", st.lists(labels, min_size=1, max_size=3))
app_names = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
node_names = st.from_regex(r"node[0-9]{1,2}", fullmatch=True)
task_ids = st.from_regex(r"[a-z0-9]{6,12}", fullmatch=True)
paths = st.from_regex(r"/[a-z0-9/_.-]{0,20}", fullmatch=True)
ipv4 = st.builds(lambda a, b: f"10.{a}.{b}.1", st.integers(0, 255), st.integers(0, 255))
addresses = st.one_of(ipv4, st.sampled_from(["fd00::1", "2001:db8::7", "127.0.0.1"]))


@st.composite
def valid_routes(draw):
    spec = {}
    if draw(st.booleans()):
        spec["hosts"] = draw(st.lists(dns_names, min_size=1, max_size=70, unique=True))
    if "hosts" not in spec or draw(st.booleans()):
        spec["service_port"] = draw(st.integers(PORT_RANGE["first"], PORT_RANGE["last"]))
    if draw(st.booleans()):
        spec["health"] = {"path": draw(paths), "expect_status": draw(st.integers(100, 599))}
        if draw(st.booleans()):
            spec["health"]["body_contains"] = draw(st.from_regex(r"[A-Za-z0-9._:=-]{1,40}", fullmatch=True))
    if draw(st.booleans()):
        spec["balance"] = draw(st.sampled_from(["roundrobin", "leastconn", "source"]))
    if draw(st.booleans()):
        spec["canary_weight"] = draw(st.integers(0, 100))
    spec["sticky"] = draw(st.booleans())
    if draw(st.booleans()):
        spec["idempotency_header"] = draw(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,30}", fullmatch=True))
    return spec


@st.composite
def valid_instances(draw, apps):
    document = {
        "addr": draw(addresses),
        "port": draw(st.integers(1, 65535)),
        "version": draw(st.from_regex(r"v[0-9]{1,3}", fullmatch=True)),
        "track": draw(st.sampled_from(["stable", "canary"])),
    }
    key = f"{draw(node_names)}/{draw(st.sampled_from(apps))}/{draw(task_ids)}"
    return key, document


# Characters no field's grammar admits, and text that would mean something to HAProxy.
BAD = ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", " ", '"', "'", "#", "\\", "$", "{", "}", "<", "\u2028", "\u00e9"]
KEYWORDS = ["\nglobal\n", " init-addr none", "\nprogram pwn\n command sh -c id\n", "\nbackend x\n#", " ssl", "${HOME}"]
# Short enough that every error message names the whole key.
hostile_keys = st.builds(
    lambda head, bad, tail: head + bad + tail,
    st.sampled_from(["", "a", "n1/app/", "app"]),
    st.sampled_from([*BAD, "/", "%"]),
    st.text(max_size=8),
)
hostile_text = st.builds(
    lambda head, bad, tail: head + bad + tail,
    st.sampled_from(["", "a", "shop", "10.0.0.1", "fe80::1%", "/h"]),
    st.sampled_from(BAD + KEYWORDS),
    st.text(max_size=30),
)


@st.composite
def mutated_route(draw, spec):
    """spec with one field made invalid; returns the hostile spec."""
    spec = json.loads(json.dumps(spec))
    fields = ["hosts", "path", "body", "balance", "service_port", "header", "unknown", "host_count"]
    field = draw(st.sampled_from(fields))
    if field == "hosts":
        spec["hosts"] = [*spec.get("hosts", []), draw(hostile_text)]
    elif field == "path":
        spec["health"] = {"path": draw(hostile_text)}
    elif field == "body":
        spec["health"] = {"path": "/h", "body_contains": draw(hostile_text)}
    elif field == "balance":
        spec["balance"] = draw(hostile_text)
    elif field == "service_port":
        spec["service_port"] = draw(st.one_of(st.integers(-5, 9999), st.integers(20000, 70000), hostile_text))
    elif field == "header":
        spec["idempotency_header"] = draw(hostile_text)
    elif field == "host_count":
        spec["hosts"] = [f"h{number}.test" for number in range(300)]
    else:
        spec[draw(hostile_text)] = draw(hostile_text)
    return spec


@st.composite
def mutated_instance(draw, document):
    document = dict(document)
    field = draw(st.sampled_from(["addr", "scope", "port", "version", "track", "unknown"]))
    if field == "addr":
        document["addr"] = draw(hostile_text)
    elif field == "scope":
        document["addr"] = "fe80::1%" + draw(st.sampled_from([*KEYWORDS, "eth0", "x"]))
    elif field == "port":
        document["port"] = draw(st.one_of(st.integers(-10, 0), st.integers(65536, 10**6), hostile_text))
    elif field in ("version", "track"):
        document[field] = draw(hostile_text)
    else:
        document[draw(hostile_text)] = 1
    return document


@st.composite
def datasets(draw):
    """(valid routes, valid instances, hostile routes, hostile instances) with distinct keys."""
    apps = draw(st.lists(app_names, min_size=1, max_size=5, unique=True))
    routes = [(app, json.dumps(draw(valid_routes())), index + 1) for index, app in enumerate(apps)]
    instances = {}
    for key, document in draw(st.lists(valid_instances(apps), max_size=12)):
        instances[key] = json.dumps(document)
    hostile_routes, hostile_instances = {}, {}
    for number, (app, value, _created) in enumerate(draw(st.lists(st.sampled_from(routes), max_size=4))):
        bad = draw(mutated_route(json.loads(value)))
        key = draw(st.one_of(st.just(f"zz{number}-{app}"), hostile_keys))
        hostile_routes[key] = json.dumps(bad)
    for number, key in enumerate(draw(st.lists(st.sampled_from(sorted(instances) or ["n1/x/t"]), max_size=4))):
        node, app, _task = key.split("/")
        document = json.loads(instances.get(key, '{"addr": "10.0.0.1", "port": 80}'))
        hostile_key = draw(st.one_of(st.just(f"{node}/{app}/bad{number}"), hostile_keys))
        hostile_instances[hostile_key] = json.dumps(draw(mutated_instance(document)))
    return (
        routes,
        [(key, value, 5) for key, value in instances.items()],
        [(key, value, 0) for key, value in hostile_routes.items()],  # oldest of all: if one claimed, it would win
        [(key, value, 0) for key, value in hostile_instances.items()],
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
arbitrary_entries = st.lists(
    st.tuples(st.text(max_size=30), st.one_of(json_values.map(json.dumps), st.text(max_size=60)), st.integers(0, 9)),
    max_size=6,
)


# -- properties -------------------------------------------------------------------------
@PROPERTY
@given(data=datasets())
def test_property_hostile_items_change_nothing_but_the_log(template, data):
    compiled, workdir = template
    routes, instances, hostile_routes, hostile_instances = data
    clean, clean_warnings = render(compiled, routes, instances)
    output, warnings = render(compiled, routes + hostile_routes, instances + hostile_instances)
    assert output == clean, "a hostile item changed the configuration"
    # A key ending in / is a folder in Consul's model: tree() leaves it out, as consul-template does.
    items = [key for key, _value, _created in hostile_routes + hostile_instances if not key.endswith("/")]
    assert set(clean_warnings) <= set(warnings)
    assert len(warnings) == len(clean_warnings) + len(items), "each hostile item is logged, once"
    haproxy_check(workdir, output)


def test_the_most_hosts_a_route_may_have_pass_the_check(template):
    compiled, workdir = template
    hosts = [f"host-{number}.example.com" for number in range(256)]
    output, warnings = render(compiled, [("web", json.dumps({"hosts": hosts}), 1)], [])
    assert warnings == []
    assert sum(line.count(".example.com") for line in output.splitlines() if "use_backend" in line) == 256
    haproxy_check(workdir, output)


@PROPERTY
@given(routes=arbitrary_entries, instances=arbitrary_entries)
def test_property_arbitrary_data_renders_only_known_lines_that_haproxy_accepts(template, routes, instances):
    compiled, workdir = template
    empty, _warnings = render(compiled, [], [])
    output, _warnings = render(compiled, routes, instances)
    assert_only_known_lines(output, empty)
    haproxy_check(workdir, output)


# -- the review's payloads, through the real renderer and HAProxy -------------------------
SCOPE_PROGRAM = (
    "fe80::1%x init-addr none\nglobal\n    master-worker\n"
    'program pwn\n    command sh -c "touch /tmp/pwned"\nbackend t\n#'
)
PAYLOADS = {
    "scope-id-program": ("instance", {"addr": SCOPE_PROGRAM, "port": 80}, "addr"),
    "scope-id-frontend": ("instance", {"addr": "fe80::1%x\nfrontend evil\n    bind :10999\n#", "port": 80}, "addr"),
    "scope-id-stats-socket": (
        "instance",
        {"addr": "fe80::1%x\nglobal\n    stats socket /tmp/evil.sock level admin\n#", "port": 80},
        "addr",
    ),
    "scope-id-foreign-server": (
        "instance",
        {"addr": "fe80::1%x\n    server foreign 10.9.9.9:80\n#", "port": 80},
        "addr",
    ),
    "host-with-newline": ("route", {"hosts": ["evil\n.example.com"]}, "hosts[0]"),
    "health-path-with-newline": ("route", {"hosts": ["h.example.com"], "health": {"path": "/h\n"}}, "health.path"),
    "route-key-with-newline": ("route-key", {"hosts": ["k.example.com"]}, "app name"),
    "service-port-of-the-router": ("route", {"service_port": 8501}, "service_port"),
    "service-port-of-ssh": ("route", {"service_port": 22}, "service_port"),
    "host-taken-by-a-later-name": ("route", {"hosts": ["SHOP.example.com."]}, "host shop.example.com"),
}


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_a_review_payload_never_goes_live_and_the_rest_is_served(router, backends, name):
    kind, value, field = PAYLOADS[name]
    proxy = router(haproxy_service_port_range=PORT_RANGE)
    (shop,) = backends("shop-1")
    proxy.put_route("shop", {"hosts": ["shop.example.com"], "service_port": 10080})
    proxy.put_instance("shop", "node1", "t1", shop.port)
    proxy.wait_rendered(lambda text: "server node1-t1" in text, what="the shop route")
    if kind == "instance":
        key = f"{proxy.prefix}instances/node1/shop/evil"
    elif kind == "route-key":
        key = f"{proxy.prefix}routes/evil\n"
    else:
        key = f"{proxy.prefix}routes/aaa-evil"
    # Through the transaction API, which stores a key exactly as given (the KV endpoint trims a newline).
    operation = {"KV": {"Verb": "set", "Key": key, "Value": base64.b64encode(json.dumps(value).encode()).decode()}}
    proxy.consul.request("PUT", "/v1/txn", json.dumps([operation]).encode())
    # A later good change must still go live: routing is not frozen.
    proxy.put_route("late", {"hosts": ["late.example.com"]})
    proxy.wait_rendered(lambda text: "app_late" in text, what="a good change after the payload")
    live = proxy.live.read_text()
    for marker in ("pwn", "evil", "foreign", "8501", ":22\n", "10999"):
        assert marker not in live, f"{marker!r} reached the live configuration"
    # The live file shows the late change before HAProxy's reloads are over, which on a loaded machine takes a while.
    wait_for(
        lambda: request(proxy.http_port, "shop.example.com") == (200, "shop-1"), 5, 0.1, what="shop served after it"
    )
    assert request(proxy.http_port, "SHOP.example.com.") == (200, "shop-1"), "a trailing dot is the same host"
    skipped = wait_for(lambda: [m for m in proxy.status()["skipped"] if field in m], 10, what=f"a skip naming {field}")
    assert any(("evil" in message) or ("aaa-evil" in message) for message in skipped), skipped
    assert "template skipped data" in proxy.renderer.log()
    assert not os.path.exists("/tmp/pwned")
