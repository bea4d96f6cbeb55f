"""Must show: a report written by the reporter reads back as itself; a reader skips, with a reason naming the key
and the field, any key that does not fit the grammar (hostile values included) and never raises anything else;
servers_up holds only when every address is UP on every fresh router that reports no error."""

import json

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.router import report as reports
from ansible_collections.dockyard.platform.plugins.module_utils.router.haproxy import Server
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = 1_800_000_000.0
UP = Server("10.0.0.7", 31000, "UP", 1)


def make(node="node1", updated=NOW, backends=None, error="", reloads=3, worker=4242):
    backends = {"app_web": {"node2-t1": UP}} if backends is None else backends
    return reports.Report(node, updated, 30_000, reloads, worker, backends, error)


def document(**changes):
    return {**json.loads(make().value()), **changes}


def encoded(value) -> bytes:
    return json.dumps(value).encode()


class KV:
    """Stands in for ConsulClient.kv_recurse, to hand the reader values a real Consul would store as they are."""

    def __init__(self, entries):
        self.entries = entries
        self.asked = []

    def kv_recurse(self, prefix):
        self.asked.append(prefix)
        return {key: (value, None) for key, value in self.entries.items()}


def test_a_report_reads_back_as_itself():
    written = make()
    value = written.value()
    assert b" " not in value, "compact"
    assert json.loads(value)["backends"] == {
        "app_web": {"node2-t1": {"addr": "10.0.0.7", "port": 31000, "state": "UP", "weight": 1}}
    }
    assert reports.parse_report("node1", value) == written
    assert reports.router_key("dockyard/", "node1") == "dockyard/routers/node1"


def test_an_error_report_reads_back():
    written = make(backends={}, error="HAProxy unreadable for 6s: refused", reloads=None, worker=None)
    assert reports.parse_report("node1", written.value()) == written
    assert "error" not in make().content()


def test_content_leaves_out_when():
    assert make(updated=1.0).content() == make(updated=2.0).content()
    assert make().content() != make(backends={}).content()


@pytest.mark.parametrize(
    ("node", "value", "reason"),
    [
        ("node1", b"\xff", "not UTF-8"),
        ("node1", b"{", "invalid JSON"),
        ("node1", b"[" * 100_000, "invalid JSON"),  # deep nesting: a RecursionError in the decoder
        ("node1", b" " * (reports.MAX_REPORT_BYTES + 1), "more than 262144"),
        ("node1", b"[]", "expected a JSON object, got list"),
        ("node1", encoded(document(extra=1)), "unknown key(s) 'extra'"),
        ("node1", encoded({k: v for k, v in document().items() if k != "backends"}), "missing backends"),
        ("node1", encoded(document(node="node2")), "not the key's node"),
        ("bad node", encoded(document(node="bad node")), "the node name"),
        ("node1", encoded(document(updated="now")), "updated"),
        ("node1", encoded(document(updated=True)), "updated"),
        ("node1", encoded(document(updated=-1)), "updated"),
        ("node1", make().value().replace(b'"updated":1800000000.0', b'"updated":1e999'), "updated"),
        ("node1", make().value().replace(b'"updated":1800000000.0', b'"updated":NaN'), "updated"),
        ("node1", encoded(document(heartbeat_ms=10)), "heartbeat_ms"),
        ("node1", encoded(document(reloads=-1)), "reloads"),
        ("node1", encoded(document(worker=0)), "worker"),
        ("node1", encoded(document(error=7)), "error"),
        ("node1", encoded(document(error="a\nb")), "error"),
        ("node1", encoded(document(error="x" * 501)), "error"),
        ("node1", encoded(document(backends=[])), "backends: expected an object"),
        ("node1", encoded(document(backends={"a b": {}})), "not an HAProxy name"),
        ("node1", encoded(document(backends={"app": []})), "expected an object of servers"),
        ("node1", encoded(document(backends={"app": {"s/1": {}}})), "server 's/1'"),
        ("node1", encoded(document(backends={"app": {"s1": {"addr": "10.0.0.1"}}})), "exactly addr, port"),
    ],
)
def test_bad_reports_are_refused_naming_the_field(node, value, reason):
    with pytest.raises(reports.ReportError) as raised:
        reports.parse_report(node, value)
    assert reason in str(raised.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("addr", "example.com"),
        ("addr", "10.0.0.1\n"),
        ("addr", 167772161),
        ("port", 65536),
        ("port", "80"),
        ("port", True),
        ("state", "up"),
        ("state", "NOLB"),
        ("weight", 257),
        ("weight", 1.5),
    ],
)
def test_bad_servers_are_refused_naming_the_field(field, value):
    server = {"addr": "10.0.0.1", "port": 80, "state": "UP", "weight": 1, field: value}
    with pytest.raises(reports.ReportError, match=f"router node1: app/s1: {field}"):
        reports.parse_report("node1", encoded(document(backends={"app": {"s1": server}})))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), JSON.map(encoded), st.builds(lambda b: encoded(document(backends=b)), JSON)))
def test_hostile_values_are_refused_with_a_report_error_or_read(value):
    try:
        parsed = reports.parse_report("node1", value)
    except reports.ReportError as error:
        assert str(error).startswith("router ")
        return
    assert reports.parse_report("node1", parsed.value()) == parsed


def test_read_routers_reads_every_router_and_skips_bad_keys_with_a_reason():
    kv = KV(
        {
            "dockyard/routers/node1": make().value(),
            "dockyard/routers/node2": make(node="node2").value(),
            "dockyard/routers/node3": b"{not json",
            "dockyard/routers/node4/extra": make(node="node4").value(),
            "dockyard/routers/": b"",
        }
    )
    found, skipped = reports.read_routers(kv, "dockyard/")
    assert kv.asked == ["dockyard/routers/"]
    assert sorted(found) == ["node1", "node2"] and found["node1"] == make()
    assert len(skipped) == 3
    assert any("router node3: invalid JSON" in reason for reason in skipped)
    assert any("'dockyard/routers/node4/extra': not a router's key" in reason for reason in skipped)
    assert any("router '': the node name" in reason for reason in skipped)


def test_servers_up_on_every_fresh_router():
    both = {"node1": make(), "node2": make(node="node2")}
    assert reports.servers_up(both, "app_web", {("10.0.0.7", 31000)}, now=NOW + 1)
    assert reports.servers_up(both, "app_web", set(), now=NOW + 1)
    assert not reports.servers_up({}, "app_web", set(), now=NOW), "no router reports: nothing confirms"


@pytest.mark.parametrize(
    ("router", "reason"),
    [
        (make(updated=NOW - 91), "no report for 91s (heartbeat 30s)"),
        (make(backends={}, error="HAProxy unreadable"), "reports an error: HAProxy unreadable"),
        (make(backends={"app_web": {"s": Server("10.0.0.7", 31000, "DOWN", 1)}}), "10.0.0.7:31000 is DOWN in app_web"),
        (
            make(backends={"app_web": {"s": Server("10.0.0.7", 31000, "DRAIN", 1)}}),
            "10.0.0.7:31000 is DRAIN in app_web",
        ),
        (make(backends={"app_other": {"s": UP}}), "10.0.0.7:31000 is absent in app_web"),
        (
            make(backends={"app_web": {"a": UP, "b": Server("10.0.0.7", 31000, "MAINT", 1)}}),
            "10.0.0.7:31000 is MAINT/UP in app_web",
        ),
    ],
)
def test_servers_are_not_up_while_any_router_says_otherwise(router, reason):
    routers = {"node1": router, "node2": make(node="node2")}
    assert not reports.servers_up(routers, "app_web", {("10.0.0.7", 31000)}, now=NOW)
    assert reports.waiting_for(routers, "app_web", {("10.0.0.7", 31000)}, now=NOW) == {"node1": [reason]}


def test_a_named_router_without_a_report_is_waited_for():
    waiting = reports.waiting_for({"node1": make()}, "app_web", {("10.0.0.7", 31000)}, ("node1", "node9"), NOW)
    assert waiting == {"node9": ["no report"]}


def test_ipv6_addresses_match_however_they_are_written():
    router = make(backends={"app_web": {"s": Server("2001:db8::7", 31000, "UP", 1)}})
    assert reports.servers_up({"node1": router}, "app_web", {("2001:DB8:0::7", 31000)}, now=NOW)
