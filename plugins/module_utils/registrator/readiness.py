# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Readiness before traffic: the HTTP check label's grammar, the probe, and the containers waiting for it.

HAProxy 2.6 puts a server it has just been given UP at once and sends it
requests before its first health check (init-state comes only with 3.1). So
the app module copies an app's HTTP check onto its containers (the label
org.dockyard.http_check), and the registrator registers such a container only
once one GET of the check's path, sent where the routers would send it (the
address and port of its instance, with the Host header HAProxy's check sends),
has passed. Once registered, the routers' checks own its health.

Pure but for probe() (one HTTP request). Times are time.monotonic() seconds:
a waiting container is not remembered across restarts, it is probed again.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
from dataclasses import dataclass

from ..daemon import routing
from ..daemon.routing import Instance, RouteError
from .instances import Skip, labels_of, name_of

HTTP_CHECK_LABEL = "org.dockyard.http_check"
CHECK_KEYS = ("path", "expect_status", "body_contains", "host", "interval_ms", "timeout_ms")
REQUIRED_KEYS = ("path", "expect_status", "host", "interval_ms", "timeout_ms")
# Well above what the grammar lets through (a path of 512, a text of 128, a host of 253), far below anything costly.
MAX_LABEL_BYTES = 2048
MAX_BODY_BYTES = 64 * 1024
# The app's interval, kept within these: probing a starting app every 5 min, or every 10 ms, helps nobody.
MIN_PROBE_INTERVAL = 0.2
MAX_PROBE_INTERVAL = 5.0


class LabelError(ValueError):
    """The label's value is outside its grammar; the message names the label and the field."""


@dataclass(frozen=True)
class HttpCheck:
    """The app's HTTP check as HAProxy sends it: GET path with Host host, expecting a status and maybe a text."""

    path: str
    expect_status: int
    host: str
    interval_ms: int
    timeout_ms: int
    body_contains: str | None = None

    def label(self) -> str:
        """The label's value: compact JSON with sorted keys (body_contains only when set)."""
        document = {
            "path": self.path,
            "expect_status": self.expect_status,
            "host": self.host,
            "interval_ms": self.interval_ms,
            "timeout_ms": self.timeout_ms,
        }
        if self.body_contains is not None:
            document["body_contains"] = self.body_contains
        return json.dumps(document, sort_keys=True, separators=(",", ":"))

    @property
    def probe_interval(self) -> float:
        """Seconds between two probes of a container that is not ready yet."""
        return min(MAX_PROBE_INTERVAL, max(MIN_PROBE_INTERVAL, self.interval_ms / 1000))


def _refused(field: str, reason: str) -> LabelError:
    return LabelError(f"label {HTTP_CHECK_LABEL}: {field}: {reason}")


def _shown(value) -> str:
    """A value for a log line: its repr, cut short (a label can be as long as its limit)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number")


def _unique(pairs: list) -> dict:
    keys = [key for key, _value in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key appears twice")
    return dict(pairs)


def parse_check_host(value, where: str) -> str:
    """The Host header of HAProxy's check: a route's host, written as the routers keep it, or the app's name.

    An app without hosts is checked with its name as the Host (roles/haproxy's
    template), and an app name may hold capitals or '_', which no DNS name does.
    """
    with contextlib.suppress(RouteError):
        return routing.parse_name(value, where)
    host = routing.parse_host(value, where)
    if host != value:
        raise RouteError(f"{where}: expected a host in lower case without a trailing dot, got {value!r}")
    return host


def _milliseconds(document: dict, key: str) -> int:
    value = document[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refused(key, f"expected whole milliseconds, got {_shown(value)}")
    if not routing.MIN_INTERVAL_MS <= value <= routing.MAX_INTERVAL_MS:
        raise _refused(key, f"must lie between {routing.MIN_INTERVAL_MS} and {routing.MAX_INTERVAL_MS}, got {value}")
    return value


def parse_http_check(value) -> HttpCheck:
    """The check a label's value describes; LabelError (naming the label and the field) for anything else.

    The value comes from an app team's deployment, so nothing in it is trusted:
    a JSON object of exactly the keys HttpCheck.label() writes, each in the
    routing schema's grammar (what the routers' HAProxy would take).
    """
    if not isinstance(value, str) or len(value.encode("utf-8", "surrogatepass")) > MAX_LABEL_BYTES:
        raise LabelError(f"label {HTTP_CHECK_LABEL}: expected a JSON object of at most {MAX_LABEL_BYTES} bytes")
    try:
        document = json.loads(value, object_pairs_hook=_unique, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        raise LabelError(f"label {HTTP_CHECK_LABEL}: invalid JSON: {error}") from None
    if not isinstance(document, dict):
        raise LabelError(f"label {HTTP_CHECK_LABEL}: expected a JSON object, got {_shown(document)}")
    unknown = set(document) - set(CHECK_KEYS)
    if unknown:
        shown = ", ".join(_shown(key) for key in sorted(unknown)[:5]) + (", ..." if len(unknown) > 5 else "")
        raise LabelError(f"label {HTTP_CHECK_LABEL}: unknown key(s) {shown}")
    missing = [key for key in REQUIRED_KEYS if key not in document]
    if missing:
        raise LabelError(f"label {HTTP_CHECK_LABEL}: missing key(s) {', '.join(missing)}")
    status = document["expect_status"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise _refused("expect_status", f"expected an HTTP status 100-599, got {_shown(status)}")
    where = f"label {HTTP_CHECK_LABEL}"
    try:
        path = routing.parse_path(document["path"], f"{where}: path")
        host = parse_check_host(document["host"], f"{where}: host")
        body = document.get("body_contains")
        if "body_contains" in document:
            body = routing.parse_check_text(body, f"{where}: body_contains")
    except RouteError as error:
        raise LabelError(str(error)) from None
    return HttpCheck(
        path=path,
        expect_status=status,
        host=host,
        interval_ms=_milliseconds(document, "interval_ms"),
        timeout_ms=_milliseconds(document, "timeout_ms"),
        body_contains=body,
    )


def check_of(attrs: dict) -> HttpCheck | None:
    """The container's HTTP check (None without the label); Skip, naming the container, for a bad label."""
    raw = labels_of(attrs).get(HTTP_CHECK_LABEL)
    if raw is None:
        return None
    try:
        return parse_http_check(raw)
    except LabelError as error:
        raise Skip(f"container {name_of(attrs)}: {error}") from None


def probe(address: str, port: int, check: HttpCheck) -> tuple:
    """(passed, what was seen) for one GET of the check's path at address:port; never raises for what it meets.

    Plain http.client: no proxy from the environment (the address is the
    node's own), no redirect followed (HAProxy follows none either).
    """
    connection = http.client.HTTPConnection(address, port, timeout=check.timeout_ms / 1000)
    try:
        connection.request(
            "GET",
            check.path,
            headers={"Host": check.host, "Connection": "close", "User-Agent": "dockyard-registrator"},
        )
        response = connection.getresponse()
        body = response.read(MAX_BODY_BYTES) if check.body_contains is not None else b""
    except (OSError, http.client.HTTPException) as error:
        return False, f"{type(error).__name__}: {error}"
    finally:
        connection.close()
    if response.status != check.expect_status:
        return False, f"status {response.status}, expected {check.expect_status}"
    if check.body_contains is not None and check.body_contains.encode("ascii") not in body:
        return False, f"status {response.status} without {check.body_contains!r} in the first {len(body)} bytes"
    return True, f"status {response.status}"


@dataclass(eq=False)
class Waiting:
    """A container kept out of Consul until its first probe passes; the main loop alone changes it.

    A probe's result names its entry, which is compared by identity: a result
    for a container withdrawn (or restarted) meanwhile finds no entry of its own.
    """

    container: str  # the container's full ID
    name: str  # its name, for the logs
    instance: Instance  # what is registered once it is ready
    check: HttpCheck
    since: float  # when it began to wait
    due: float  # when its next probe starts (inf while one runs)
    probes: int = 0  # probes that have answered


class WaitList:
    """The containers waiting for readiness, one entry each, until a probe passes or they are withdrawn."""

    def __init__(self):
        self._waiting = {}

    def __contains__(self, container: str) -> bool:
        return container in self._waiting

    def __len__(self) -> int:
        return len(self._waiting)

    def get(self, container: str) -> Waiting | None:
        return self._waiting.get(container)

    def add(self, entry: Waiting) -> bool:
        """False when the container waits already: its probing goes on as it was."""
        if entry.container in self._waiting:
            return False
        self._waiting[entry.container] = entry
        return True

    def cancel(self, container: str) -> Waiting | None:
        return self._waiting.pop(container, None)

    def take_due(self, now: float) -> list:
        """The entries whose probe is due, earliest first; each is marked as probing (due at inf) until answered."""
        due = sorted((entry for entry in self._waiting.values() if entry.due <= now), key=lambda entry: entry.due)
        for entry in due:
            entry.due = math.inf
        return due

    def answered(self, entry: Waiting, passed: bool, now: float) -> str:
        """Records a probe's answer: ready (taken off the list), waiting (probed again an interval later) or stale.

        A stale answer is one for an entry no longer on the list (its container
        was withdrawn or restarted while the probe ran): it changes nothing.
        """
        if self._waiting.get(entry.container) is not entry:
            return "stale"
        entry.probes += 1
        if passed:
            del self._waiting[entry.container]
            return "ready"
        entry.due = now + entry.check.probe_interval
        return "waiting"

    def keep_only(self, containers: set) -> list:
        """Drops (and returns) the entries of containers not in containers."""
        gone = [entry for entry in self._waiting.values() if entry.container not in containers]
        for entry in gone:
            del self._waiting[entry.container]
        return gone

    def next_due(self) -> float:
        return min((entry.due for entry in self._waiting.values()), default=math.inf)
