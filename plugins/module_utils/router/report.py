# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A router's report: what its HAProxy serves, as one Consul key per router.

Key: `<prefix>routers/<node>` (node: the router's node name, the registrator's).
Value, compact JSON:

    {"node": "node1", "updated": 1796131141.25, "heartbeat_ms": 30000,
     "reloads": 3, "worker": 4242,
     "backends": {"app_web": {"node2-t1": {"addr": "10.0.0.7", "port": 31000, "state": "UP", "weight": 1}}},
     "error": "..."}

- updated: the router's wall clock at the write (seconds); a report older than
  STALE_HEARTBEATS heartbeats is stale: its reporter (or its router) is dead.
- reloads, worker: the configuration generation (the HAProxy master's reload
  counter) and the worker whose state this is; null while HAProxy cannot be read.
- error (only when set): why the backends are not reported (HAProxy unreachable,
  an answer that does not parse, a report over MAX_REPORT_BYTES); backends is
  then empty and no server counts as UP on this router.

The same grammar writes and reads: the reporter builds a Report, readers
(read_routers) parse every key with parse_report and skip, with a reason, any
value that does not fit, so a hostile or corrupt key never crashes a reader.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from dataclasses import dataclass, field

from ..daemon.routing import RouteError, parse_name
from .haproxy import MAX_WEIGHT, NAME, Server

STATES = ("UP", "DOWN", "MAINT", "DRAIN")
# Consul refuses values over 512 KiB; half of it holds about 2,500 servers.
MAX_REPORT_BYTES = 256 * 1024
MAX_ERROR = 500
MIN_HEARTBEAT_MS = 1_000
MAX_HEARTBEAT_MS = 3_600_000
STALE_HEARTBEATS = 3
REPORT_KEYS = ("node", "updated", "heartbeat_ms", "reloads", "worker", "backends", "error")
REQUIRED_KEYS = REPORT_KEYS[:-1]
SERVER_KEYS = ("addr", "port", "state", "weight")
_ADDRESS = re.compile(r"[0-9A-Fa-f:.]{2,39}")
_LATEST = 10**11  # seconds since 1970: year 5138, far past any real clock


class ReportError(ValueError):
    """A report that cannot be used; the message names the key and the field."""


def routers_prefix(prefix: str) -> str:
    return f"{prefix}routers/"


def router_key(prefix: str, node: str) -> str:
    """The one key a router's reporter writes, and all its token may write."""
    return f"{routers_prefix(prefix)}{node}"


@dataclass(frozen=True)
class Report:
    node: str
    updated: float
    heartbeat_ms: int
    reloads: int | None = None
    worker: int | None = None
    backends: dict = field(default_factory=dict)  # {backend: {server: Server}}
    error: str = ""

    def content(self) -> dict:
        """What the report says, without when: two reports with the same content need no new write."""
        document = {
            "node": self.node,
            "heartbeat_ms": self.heartbeat_ms,
            "reloads": self.reloads,
            "worker": self.worker,
            "backends": {
                backend: {name: _server_document(server) for name, server in servers.items()}
                for backend, servers in self.backends.items()
            },
        }
        if self.error:
            document["error"] = self.error
        return document

    def value(self) -> bytes:
        document = {**self.content(), "updated": round(self.updated, 3)}
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def stale(self, now: float) -> bool:
        """No write for STALE_HEARTBEATS heartbeats: the reporter or its router is gone."""
        return now - self.updated > STALE_HEARTBEATS * self.heartbeat_ms / 1000

    def servers(self) -> int:
        return sum(len(servers) for servers in self.backends.values())


def _server_document(server: Server) -> dict:
    return {"addr": server.addr, "port": server.port, "state": server.state, "weight": server.weight}


# -- reading ----------------------------------------------------------------------------
def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _integer(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _decode(node: str, value) -> dict:
    if not isinstance(value, (bytes, bytearray)):
        raise ReportError(f"router {node}: expected the value as bytes")
    if len(value) > MAX_REPORT_BYTES:
        raise ReportError(f"router {node}: value is {len(value)} bytes, more than {MAX_REPORT_BYTES}")
    try:
        document = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError:
        raise ReportError(f"router {node}: value is not UTF-8") from None
    except (ValueError, RecursionError) as error:  # deep nesting exhausts the decoder's recursion
        raise ReportError(f"router {node}: invalid JSON: {str(error)[:100]}") from None
    if not isinstance(document, dict):
        raise ReportError(f"router {node}: expected a JSON object, got {type(document).__name__}")
    unknown = sorted(set(document) - set(REPORT_KEYS), key=str)
    if unknown:
        raise ReportError("router {}: unknown key(s) {}".format(node, ", ".join(_shown(key) for key in unknown[:5])))
    missing = [key for key in REQUIRED_KEYS if key not in document]
    if missing:
        raise ReportError("router {}: missing {}".format(node, ", ".join(missing)))
    return document


def _address(value, where: str) -> str:
    try:
        if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
            raise ValueError
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ReportError(f"{where}: addr: expected an IP address, got {_shown(value)}") from None


def _parse_server(raw, where: str) -> Server:
    if not isinstance(raw, dict) or sorted(raw) != sorted(SERVER_KEYS):
        raise ReportError(f"{where}: expected an object with exactly {', '.join(SERVER_KEYS)}")
    if not _integer(raw["port"], 0, 65535):
        raise ReportError(f"{where}: port: expected 0-65535, got {_shown(raw['port'])}")
    if not isinstance(raw["state"], str) or raw["state"] not in STATES:
        raise ReportError(f"{where}: state: expected one of {', '.join(STATES)}, got {_shown(raw['state'])}")
    if not _integer(raw["weight"], 0, MAX_WEIGHT):
        raise ReportError(f"{where}: weight: expected 0-{MAX_WEIGHT}, got {_shown(raw['weight'])}")
    return Server(_address(raw["addr"], where), raw["port"], raw["state"], raw["weight"])


def _parse_backends(raw, node: str) -> dict:
    if not isinstance(raw, dict):
        raise ReportError(f"router {node}: backends: expected an object")
    backends = {}
    for backend, servers in raw.items():
        if not NAME.fullmatch(backend):
            raise ReportError(f"router {node}: backend {_shown(backend)}: not an HAProxy name")
        if not isinstance(servers, dict):
            raise ReportError(f"router {node}: backend {backend}: expected an object of servers")
        parsed = {}
        for name, server in servers.items():
            if not NAME.fullmatch(name):
                raise ReportError(f"router {node}: backend {backend}: server {_shown(name)}: not an HAProxy name")
            parsed[name] = _parse_server(server, f"router {node}: {backend}/{name}")
        backends[backend] = parsed
    return backends


def parse_report(node, value) -> Report:
    """A Report from its key's node (relative to <prefix>routers/) and its value (bytes); raises ReportError."""
    try:
        parse_name(node, f"router {_shown(node)}: the node name")
    except RouteError as error:
        raise ReportError(str(error)) from None
    document = _decode(node, value)
    if document["node"] != node:
        raise ReportError(f"router {node}: node: {_shown(document['node'])} is not the key's node")
    updated = document["updated"]
    if isinstance(updated, bool) or not isinstance(updated, (int, float)) or not 0 <= updated < _LATEST:
        raise ReportError(f"router {node}: updated: expected seconds since 1970, got {_shown(updated)}")
    heartbeat_ms = document["heartbeat_ms"]
    if not _integer(heartbeat_ms, MIN_HEARTBEAT_MS, MAX_HEARTBEAT_MS):
        raise ReportError(
            f"router {node}: heartbeat_ms: expected {MIN_HEARTBEAT_MS}-{MAX_HEARTBEAT_MS}, got {_shown(heartbeat_ms)}"
        )
    for name, low in (("reloads", 0), ("worker", 1)):
        if document[name] is not None and not _integer(document[name], low, 2**53):
            raise ReportError(f"router {node}: {name}: expected a number or null, got {_shown(document[name])}")
    error = document.get("error", "")
    if not isinstance(error, str) or len(error) > MAX_ERROR or not error.isprintable():
        raise ReportError(f"router {node}: error: expected printable text of at most {MAX_ERROR} characters")
    return Report(
        node=node,
        updated=float(updated),
        heartbeat_ms=heartbeat_ms,
        reloads=document["reloads"],
        worker=document["worker"],
        backends=_parse_backends(document["backends"], node),
        error=error,
    )


def read_routers(client, prefix: str) -> tuple:
    """({node: Report}, [reason a key was skipped, ...]) from every key under <prefix>routers/.

    client is a daemon.consul.ConsulClient (ConsulError when Consul cannot be asked).
    """
    folder = routers_prefix(prefix)
    reports, skipped = {}, []
    for key, (value, _session) in sorted(client.kv_recurse(folder).items()):
        node = key[len(folder) :]
        if not key.startswith(folder) or "/" in node:
            skipped.append(f"{_shown(key)}: not a router's key (<prefix>routers/<node>)")
            continue
        try:
            reports[node] = parse_report(node, value)
        except ReportError as error:
            skipped.append(str(error))
    return reports, skipped


# -- what readers ask --------------------------------------------------------------------
def _addresses(addresses) -> set:
    """(canonical IP, port) pairs, so that an IPv6 address matches however it was written."""
    return {(str(ipaddress.ip_address(addr)), int(port)) for addr, port in addresses}


def not_up(report: Report, backend: str, addresses, now: float | None = None) -> list:
    """Why the addresses ((ip, port) pairs) are not all UP in backend on this router: [] when they are."""
    now = time.time() if now is None else now
    if report.stale(now):
        return [f"no report for {now - report.updated:.0f}s (heartbeat {report.heartbeat_ms / 1000:g}s)"]
    if report.error:
        return [f"reports an error: {report.error}"]
    servers = report.backends.get(backend, {})
    reasons = []
    for addr, port in sorted(_addresses(addresses)):
        states = sorted({server.state for server in servers.values() if (server.addr, server.port) == (addr, port)})
        if states != ["UP"]:
            shown = f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
            reasons.append(f"{shown} is {'/'.join(states) or 'absent'} in {backend}")
    return reasons


def waiting_for(reports: dict, backend: str, addresses, routers=(), now: float | None = None) -> dict:
    """{router: [reasons]} for every router on which an address is not UP; routers (names) must report."""
    waiting = {node: ["no report"] for node in routers if node not in reports}
    for node, report in reports.items():
        reasons = not_up(report, backend, addresses, now)
        if reasons:
            waiting[node] = reasons
    return waiting


def servers_up(reports: dict, backend: str, addresses, routers=(), now: float | None = None) -> bool:
    """Every address UP in backend on every router that reports (and on every one of routers); False with none."""
    return bool(reports) and not waiting_for(reports, backend, addresses, routers, now)
