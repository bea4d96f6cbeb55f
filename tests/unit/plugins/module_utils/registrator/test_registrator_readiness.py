"""Readiness before traffic, the parts without the loop: the label's grammar (named cases and Hypothesis: any text or
JSON is a check or the parser's own error; what the app module writes reads back as written), the wait list, and the
probe against a real HTTP server on loopback."""

import http.server
import json
import math
import socket
import threading
from typing import ClassVar

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.app.spec import SpecError, parse_spec
from ansible_collections.dockyard.platform.plugins.module_utils.app.swarm import container_labels, http_check
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.routing import Instance
from ansible_collections.dockyard.platform.plugins.module_utils.registrator import instances, readiness
from ansible_collections.dockyard.platform.plugins.module_utils.registrator.readiness import (
    HTTP_CHECK_LABEL,
    HttpCheck,
    LabelError,
    Waiting,
    WaitList,
    parse_http_check,
)
from hypothesis import given, settings
from hypothesis import strategies as st

PROPERTY = settings(max_examples=400, derandomize=True, deadline=None)
VALID = {"path": "/healthz", "expect_status": 200, "host": "shop.example.com", "interval_ms": 2000, "timeout_ms": 500}


def label(**changes) -> str:
    document = {**VALID, **changes}
    return json.dumps({key: value for key, value in document.items() if value is not ...})


# -- the label ------------------------------------------------------------------------
def test_a_valid_label_is_read_into_a_check():
    assert parse_http_check(label(body_contains="ok")) == HttpCheck(
        path="/healthz",
        expect_status=200,
        host="shop.example.com",
        interval_ms=2000,
        timeout_ms=500,
        body_contains="ok",
    )
    assert parse_http_check(label()).body_contains is None


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("", "invalid JSON"),
        ("[1]", "expected a JSON object"),
        ('{"path": "/a", "path": "/b"}', "invalid JSON: a key appears twice"),
        (label(interval_ms=float("nan")), "invalid JSON: NaN is not a number"),
        ("[" * 1500 + "]" * 1500, "expected a JSON object of at most 2048 bytes"),
        ("[" * 1000 + "]" * 1000, "invalid JSON"),  # deeper than the decoder recurses
        (label(port=8080), "unknown key(s) 'port'"),
        (label(host=...), "missing key(s) host"),
        (label(path="healthz"), "path: expected a path starting with /"),
        (label(path="/a b"), "path: expected a path starting with /"),
        (label(path="/a\n"), "path: expected a path starting with /"),
        (label(expect_status=99), "expect_status: expected an HTTP status 100-599, got 99"),
        (label(expect_status=True), "expect_status: expected an HTTP status 100-599, got True"),
        (label(expect_status="200"), "expect_status: expected an HTTP status 100-599"),
        (label(body_contains=None), "body_contains: expected at most 128 letters"),
        (label(body_contains="all good"), "body_contains: expected at most 128 letters"),
        (label(body_contains="x" * 129), "body_contains: expected at most 128 letters"),
        (label(host="shop.example.com\r\nX-Evil: 1"), "host: "),
        (label(host="A" * 60 + "." + "b" * 50 + ".com"), "host: expected a host in lower case without a trailing dot"),
        (label(host="-shop"), "host: "),
        (label(interval_ms=99), "interval_ms: must lie between 100 and 3600000, got 99"),
        (label(timeout_ms=3_600_001), "timeout_ms: must lie between 100 and 3600000"),
        (label(timeout_ms=1.5), "timeout_ms: expected whole milliseconds, got 1.5"),
        (label(interval_ms=False), "interval_ms: expected whole milliseconds, got False"),
    ],
)
def test_a_bad_label_is_refused_naming_the_label_and_the_field(raw, error):
    with pytest.raises(LabelError) as refused:
        parse_http_check(raw)
    assert str(refused.value).startswith(f"label {HTTP_CHECK_LABEL}: ")
    assert error in str(refused.value)


def test_an_app_name_is_a_host_as_haproxy_sends_it_without_hosts():
    assert parse_http_check(label(host="Shop_EU")).host == "Shop_EU"
    long_host = ".".join(["a" * 60] * 4)  # past the name grammar's 100, within a DNS name's 253
    assert parse_http_check(label(host=long_host)).host == long_host


def test_a_container_with_a_bad_label_is_skipped_naming_it_and_the_label():
    attrs = {"Name": "/web.1.x", "Config": {"Labels": {HTTP_CHECK_LABEL: "{"}}}
    with pytest.raises(instances.Skip, match=rf"^container web\.1\.x: label {HTTP_CHECK_LABEL}: invalid JSON"):
        readiness.check_of(attrs)
    assert readiness.check_of({"Name": "/web.1.x", "Config": {"Labels": {}}}) is None


def test_the_probe_interval_is_the_apps_within_200ms_and_5s():
    def interval(ms):
        return HttpCheck("/", 200, "h", ms, 1000).probe_interval

    assert (interval(100), interval(1500), interval(60_000)) == (0.2, 1.5, 5.0)


# -- properties -----------------------------------------------------------------------
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
_near_keys = st.sampled_from([*readiness.CHECK_KEYS, "port", "Path", ""])


def _parsed_or_refused(raw):
    try:
        check = parse_http_check(raw)
    except LabelError as error:
        assert str(error).startswith(f"label {HTTP_CHECK_LABEL}: ")
        return None
    assert isinstance(check, HttpCheck)
    return check


@PROPERTY
@given(st.text(max_size=300) | st.binary(max_size=50) | st.integers() | st.none())
def test_any_text_is_a_check_or_refused_naming_the_label(raw):
    _parsed_or_refused(raw)


@PROPERTY
@given(_json | st.dictionaries(_near_keys, _json, max_size=7))
def test_any_json_is_a_check_or_refused_naming_the_label(document):
    check = _parsed_or_refused(json.dumps(document))
    if check is not None:
        # What was read is what would be written: nothing was made up or dropped.
        assert json.loads(check.label()) == document


_paths = st.from_regex(r"/[A-Za-z0-9\-._~!&()*+,;=:@/%?]{0,40}", fullmatch=True)
_texts = st.from_regex(r"[A-Za-z0-9\-._~!&()*+,;=:@/%?]{1,128}", fullmatch=True)
_hosts = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?){0,3}", fullmatch=True)
_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,30}", fullmatch=True)
_ms = st.integers(min_value=100, max_value=3_600_000)


@PROPERTY
@given(
    st.builds(
        HttpCheck,
        path=_paths,
        expect_status=st.integers(min_value=100, max_value=599),
        host=_hosts | _names,
        interval_ms=_ms,
        timeout_ms=_ms,
        body_contains=st.none() | _texts,
    )
)
def test_every_check_reads_back_from_its_label(check):
    assert parse_http_check(check.label()) == check


@PROPERTY
@given(
    name=_names,
    hosts=st.lists(_hosts, max_size=2),
    path=_paths,
    status=st.integers(min_value=100, max_value=599),
    body=st.none() | _texts,
    interval=st.sampled_from(["100ms", "2s", "5s", "1m", "1h"]),
    timeout=st.sampled_from(["100ms", "750ms", "2s"]),
)
def test_what_the_app_module_writes_reads_back_as_its_check(name, hosts, path, status, body, interval, timeout):
    health = {"path": path, "expect_status": status, "interval": interval, "timeout": timeout}
    if body is not None:
        health["body_contains"] = body
    try:
        spec = parse_spec({"name": name, "image": "shop:1", "container_port": 8080, "hosts": hosts, "health": health})
    except SpecError as error:
        assert error.field.startswith(("name", "hosts"))  # the spec's own grammar, stricter in places
        return
    check = parse_http_check(container_labels(spec)[HTTP_CHECK_LABEL])
    assert check == http_check(spec)
    assert check.host == (spec.hosts[0] if spec.hosts else spec.name)


# -- the wait list --------------------------------------------------------------------
CHECK = HttpCheck("/healthz", 200, "shop.example.com", interval_ms=1000, timeout_ms=500)
INSTANCE = Instance(app="web", node="n1", task="t1", addr="10.0.0.5", port=30001)


def waiting(container="c1", due=0.0):
    return Waiting(container, container, INSTANCE, CHECK, since=0.0, due=due)


def test_a_due_probe_is_taken_once_and_its_answer_schedules_the_next_or_ends_the_wait():
    wait_list = WaitList()
    first, later = waiting("c1", due=1.0), waiting("c2", due=3.0)
    assert wait_list.add(first) and wait_list.add(later)
    assert not wait_list.add(waiting("c1", due=0.0)), "a container waiting already keeps its entry"
    assert wait_list.next_due() == 1.0
    assert wait_list.take_due(2.0) == [first]
    assert wait_list.take_due(2.0) == [], "a probe in flight is not started again"
    assert wait_list.next_due() == 3.0
    assert wait_list.answered(first, False, now=2.5) == "waiting"
    assert (first.probes, first.due) == (1, 3.5)
    assert wait_list.take_due(4.0) == [later, first]
    assert wait_list.answered(first, True, now=4.1) == "ready"
    assert first.probes == 2 and "c1" not in wait_list and len(wait_list) == 1


def test_an_answer_for_a_withdrawn_or_restarted_container_changes_nothing():
    wait_list = WaitList()
    old = waiting("c1")
    wait_list.add(old)
    wait_list.take_due(0.0)
    assert wait_list.cancel("c1") is old
    assert wait_list.answered(old, True, now=1.0) == "stale"
    restarted = waiting("c1", due=5.0)
    wait_list.add(restarted)
    assert wait_list.answered(old, True, now=1.0) == "stale"
    assert wait_list.get("c1") is restarted and restarted.probes == 0


def test_keep_only_drops_the_containers_no_longer_waiting():
    wait_list = WaitList()
    for container in ("c1", "c2", "c3"):
        wait_list.add(waiting(container))
    assert [entry.container for entry in wait_list.keep_only({"c2"})] == ["c1", "c3"]
    assert "c2" in wait_list and len(wait_list) == 1
    assert WaitList().next_due() == math.inf


# -- the probe ------------------------------------------------------------------------
class App(http.server.BaseHTTPRequestHandler):
    """Answers as the test sets it, and records the requests it got."""

    status = 200
    body = b"ok"
    headers_seen: ClassVar[list] = []

    def do_GET(self):
        App.headers_seen.append((self.path, self.headers.get("Host")))
        self.send_response(App.status)
        if App.status in (301, 302):
            self.send_header("Location", "/healthz")
        self.send_header("Content-Length", str(len(App.body)))
        self.end_headers()
        self.wfile.write(App.body)

    def log_message(self, *_args):
        pass


@pytest.fixture
def app():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), App)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    App.status, App.body, App.headers_seen = 200, b"ok", []
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_probe_gets_the_path_with_haproxys_host_header(app):
    check = HttpCheck("/healthz?x=1", 200, "shop.example.com", 1000, 1000)
    assert readiness.probe("127.0.0.1", app, check) == (True, "status 200")
    assert App.headers_seen == [("/healthz?x=1", "shop.example.com")]


def test_the_probe_fails_on_another_status_or_a_body_without_the_text(app):
    App.status = 503
    passed, seen = readiness.probe("127.0.0.1", app, CHECK)
    assert (passed, seen) == (False, "status 503, expected 200")
    App.status, App.body = 200, b"x" * (70 * 1024) + b"ready"
    passed, seen = readiness.probe("127.0.0.1", app, HttpCheck("/", 200, "h", 1000, 1000, body_contains="ready"))
    assert not passed and "without 'ready' in the first 65536 bytes" in seen
    App.body = b"all is ready"
    assert readiness.probe("127.0.0.1", app, HttpCheck("/", 200, "h", 1000, 1000, body_contains="ready"))[0]


def test_the_probe_follows_no_redirect_and_no_proxy(app, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://192.0.2.1:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://192.0.2.1:3128")
    App.status = 302
    assert readiness.probe("127.0.0.1", app, CHECK) == (False, "status 302, expected 200")
    assert len(App.headers_seen) == 1


def test_the_probe_of_nothing_listening_fails_without_raising(app):
    passed, seen = readiness.probe("127.0.0.1", 1, CHECK)
    assert not passed and seen.startswith("ConnectionRefusedError")


def test_the_probe_gives_up_after_the_checks_timeout():
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        check = HttpCheck("/", 200, "h", 1000, timeout_ms=200)
        passed, seen = readiness.probe("127.0.0.1", silent.getsockname()[1], check)
    finally:
        silent.close()
    assert not passed and "timed out" in seen
