# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Routes: the route specs and instances in Consul KV, validated, as a routing table.

Plain Python, shared by the renderer's `routing_table()` template function
(HAProxy's configuration) and the app module (which validates a spec before it
writes it).

- `<prefix>routes/<app>` holds a route spec (JSON), parsed by parse_route():
  {"hosts": [...], "service_port": int, "balance": "roundrobin"|"leastconn"|"source",
   "health": {"path": "/...", "expect_status": int, "interval": "2s"},
   "canary_weight": 0-100, "sticky": bool}.
  Unknown keys are errors, so typos surface.
- `<prefix>instances/<app>/<node>/<task>` holds an instance (JSON), parsed by
  parse_instance(): {"addr": ip, "port": int, "version": str, "track": "stable"|"canary"}.
- routing_table() builds what HAProxy needs from both: per app a backend with
  its servers and weights; conflicts (two routes claiming a host or a service
  port) and bad values become errors in the table, never exceptions, so one
  bad key cannot stop the rest from rendering.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from fractions import Fraction

from ..daemon.instance import TRACKS, Instance

BALANCES = ("roundrobin", "leastconn", "source")
ROUTE_KEYS = ("hosts", "service_port", "balance", "health", "canary_weight", "sticky")
HEALTH_KEYS = ("path", "expect_status", "interval")
MAX_WEIGHT = 256  # HAProxy server weights are 0-256
EQUAL_WEIGHT = 100  # each server's weight when no split applies
MIN_INTERVAL_MS = 100
MAX_INTERVAL_MS = 3_600_000

_APP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# A path HAProxy takes as one unquoted word: RFC 3986 characters minus those
# its configuration parser treats specially (# comments, quotes, \ and $).
_PATH = re.compile(r"^/[A-Za-z0-9\-._~!&()*+,;=:@/%?]*$")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")


class RouteError(ValueError):
    """A route spec or an instance value that cannot be used; the message names the app and the field."""


@dataclass(frozen=True)
class Health:
    path: str | None = None  # None: TCP connect checks
    expect_status: int = 200
    interval_ms: int | None = None  # None: the router's default


@dataclass(frozen=True)
class Route:
    app: str
    hosts: tuple = ()
    service_port: int | None = None
    balance: str = "roundrobin"
    health: Health = field(default_factory=Health)
    canary_weight: int | None = None
    sticky: bool = False


@dataclass
class Server:
    name: str
    instance: Instance
    weight: int

    @property
    def address(self) -> str:
        return self.instance.address

    @property
    def track(self) -> str:
        return self.instance.track


@dataclass
class Backend:
    route: Route
    name: str
    servers: list = field(default_factory=list)
    interval_ms: int = 5000

    @property
    def app(self) -> str:
        return self.route.app

    @property
    def health(self) -> Health:
        return self.route.health


@dataclass
class RoutingTable:
    apps: list = field(default_factory=list)  # Backends, sorted by app name
    errors: list = field(default_factory=list)  # one message per skipped route or instance

    @property
    def hosts(self) -> list:
        """(host, backend) for every host of every app, sorted by host."""
        return sorted((host, backend) for backend in self.apps for host in backend.route.hosts)

    @property
    def service_ports(self) -> list:
        """(port, backend) for every app with a service port, sorted by port."""
        return sorted(
            ((b.route.service_port, b) for b in self.apps if b.route.service_port is not None), key=lambda x: x[0]
        )


# -- parsing --------------------------------------------------------------------------
def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_duration_ms(value, where: str) -> int:
    """Milliseconds from "500ms", "2s", "1m", "1h", bounded to 100ms-1h."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise RouteError(f"{where}: expected a duration such as 2s or 500ms, got {value!r}")
    milliseconds = int(match.group(1)) * _UNIT_MS[match.group(2)]
    if not MIN_INTERVAL_MS <= milliseconds <= MAX_INTERVAL_MS:
        raise RouteError(f"{where}: must lie between 100ms and 1h, got {value!r}")
    return milliseconds


def _host(value, where: str) -> str:
    if not isinstance(value, str):
        raise RouteError(f"{where}: expected a DNS name, got {value!r}")
    host = value.strip().lower().rstrip(".")
    if not host or len(host) > 253 or not all(_LABEL.match(label) for label in host.split(".")):
        raise RouteError(f"{where}: {value!r} is not a DNS name")
    return host


def _port(value, where: str) -> int:
    if not _integer(value) or not 1 <= value <= 65535:
        raise RouteError(f"{where}: expected a port number 1-65535, got {value!r}")
    return value


def _health(app: str, raw) -> Health:
    where = f"route {app}: health"
    if not isinstance(raw, dict):
        raise RouteError(f"{where}: expected an object with path, expect_status, interval")
    unknown = sorted(set(raw) - set(HEALTH_KEYS))
    if unknown:
        raise RouteError("{}: unknown key(s) {}".format(where, ", ".join(unknown)))
    path = raw.get("path")
    if path is not None and (not isinstance(path, str) or not _PATH.match(path)):
        raise RouteError(f"{where}.path: expected a path starting with / (no spaces, quotes, # or \\), got {path!r}")
    status = raw.get("expect_status", 200)
    if not _integer(status) or not 100 <= status <= 599:
        raise RouteError(f"{where}.expect_status: expected an HTTP status 100-599, got {status!r}")
    if "expect_status" in raw and path is None:
        raise RouteError(f"{where}.expect_status: needs health.path (without a path the check is a TCP connect)")
    interval = raw.get("interval")
    interval_ms = None if interval is None else parse_duration_ms(interval, f"{where}.interval")
    return Health(path=path, expect_status=status, interval_ms=interval_ms)


def validate_app(app) -> str:
    if not isinstance(app, str) or not _APP.match(app):
        raise RouteError(f"route {app!r}: the app name must be letters, digits, '.', '_' and '-' (at most 100)")
    return app


def parse_route(app: str, text, reserved_ports=()) -> Route:
    """A Route from a spec (JSON text, bytes or an already decoded object); raises RouteError.

    reserved_ports are the router's own ports (HTTP, HTTPS, management) that no
    route may take as its service port.
    """
    validate_app(app)
    if isinstance(text, (str, bytes, bytearray)):
        try:
            raw = json.loads(text)
        except ValueError as error:
            raise RouteError(f"route {app}: invalid JSON: {error}") from None
    else:
        raw = text
    if not isinstance(raw, dict):
        raise RouteError(f"route {app}: expected a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(ROUTE_KEYS))
    if unknown:
        allowed = ", ".join(ROUTE_KEYS)
        raise RouteError("route {}: unknown key(s) {} (allowed: {})".format(app, ", ".join(unknown), allowed))
    hosts = raw.get("hosts", [])
    if not isinstance(hosts, list):
        raise RouteError(f"route {app}: hosts: expected a list of DNS names, got {hosts!r}")
    parsed_hosts = []
    for index, value in enumerate(hosts):
        host = _host(value, f"route {app}: hosts[{index}]")
        if host not in parsed_hosts:
            parsed_hosts.append(host)
    service_port = raw.get("service_port")
    if service_port is not None:
        _port(service_port, f"route {app}: service_port")
        if service_port in set(reserved_ports or ()):
            raise RouteError(f"route {app}: service_port: {service_port} is one of the router's own ports")
    if not parsed_hosts and service_port is None:
        raise RouteError(f"route {app}: needs hosts or service_port (or both)")
    balance = raw.get("balance", "roundrobin")
    if balance not in BALANCES:
        raise RouteError("route {}: balance: expected one of {}, got {!r}".format(app, ", ".join(BALANCES), balance))
    health = _health(app, raw["health"]) if raw.get("health") is not None else Health()
    canary_weight = raw.get("canary_weight")
    if canary_weight is not None and (not _integer(canary_weight) or not 0 <= canary_weight <= 100):
        raise RouteError(f"route {app}: canary_weight: expected a percentage 0-100, got {canary_weight!r}")
    sticky = raw.get("sticky", False)
    if not isinstance(sticky, bool):
        raise RouteError(f"route {app}: sticky: expected true or false, got {sticky!r}")
    return Route(
        app=app,
        hosts=tuple(parsed_hosts),
        service_port=service_port,
        balance=balance,
        health=health,
        canary_weight=canary_weight,
        sticky=sticky,
    )


def parse_instance(key: str, text) -> Instance:
    """An Instance from its key relative to the instances prefix (<app>/<node>/<task>) and its JSON value."""
    parts = str(key).split("/")
    if len(parts) != 3 or not all(parts):
        raise RouteError(f"instance {key}: expected a key <app>/<node>/<task>")
    app, node, task = parts
    where = f"instance {key}"
    try:
        raw = json.loads(text) if isinstance(text, (str, bytes, bytearray)) else text
    except ValueError as error:
        raise RouteError(f"{where}: invalid JSON: {error}") from None
    if not isinstance(raw, dict):
        raise RouteError(f"{where}: expected a JSON object")
    addr = raw.get("addr")
    if not isinstance(addr, str) or not addr:
        raise RouteError(f"{where}: addr: expected an IP address, got {addr!r}")
    try:
        addr = str(ipaddress.ip_address(addr))
    except ValueError:
        raise RouteError(f"{where}: addr: {addr!r} is not an IP address") from None
    port = _port(raw.get("port"), f"{where}: port")
    version = raw.get("version", "")
    if not isinstance(version, str):
        raise RouteError(f"{where}: version: expected a string, got {version!r}")
    track = raw.get("track", "stable")
    if track not in TRACKS:
        raise RouteError(f"{where}: track: expected stable or canary, got {track!r}")
    return Instance(app=app, node=node, task=task, addr=addr, port=port, version=version, track=track)


# -- weights and names ----------------------------------------------------------------
def track_weights(canary_weight, stable_count: int, canary_count: int) -> tuple:
    """(weight of each stable server, weight of each canary server), HAProxy weights 0-256.

    Without canary_weight, or unless both tracks have servers, every server
    weighs the same. Otherwise the canaries together get canary_weight percent
    of new traffic, as exactly as one integer weight per track allows; a
    nonzero share never rounds to weight 0, 0 and 100 give the other track 0.
    """
    if canary_weight is None or not stable_count or not canary_count:
        return EQUAL_WEIGHT, EQUAL_WEIGHT
    if canary_weight <= 0:
        return EQUAL_WEIGHT, 0
    if canary_weight >= 100:
        return 0, EQUAL_WEIGHT
    target = Fraction(canary_weight, 100)
    # canary share = C*wc / (S*ws + C*wc); the ideal ratio wc/ws = p*S / ((100-p)*C)
    ratio = Fraction(canary_weight * stable_count, (100 - canary_weight) * canary_count)
    best = None
    for stable in range(1, MAX_WEIGHT + 1):
        ideal = ratio * stable
        for canary in (int(ideal), int(ideal) + 1):
            canary = min(max(canary, 1), MAX_WEIGHT)
            share = Fraction(canary * canary_count, stable * stable_count + canary * canary_count)
            error = abs(share - target)
            if best is None or error < best[0]:
                best = (error, stable, canary)
        if best[0] == 0:
            break
    return best[1], best[2]


def share_of_canaries(stable_weight: int, canary_weight: int, stable_count: int, canary_count: int) -> Fraction:
    """The canaries' share of new traffic given per-server weights (for tests and reports)."""
    total = stable_weight * stable_count + canary_weight * canary_count
    return Fraction(canary_weight * canary_count, total) if total else Fraction(0)


def haproxy_name(text: str) -> str:
    """text with every character HAProxy does not allow in a name replaced by '_'."""
    return _NAME_UNSAFE.sub("_", text) or "_"


def backend_name(app: str) -> str:
    return "app_" + haproxy_name(app)


def _server_names(instances: list) -> list:
    names, taken = [], set()
    for instance in instances:
        base = haproxy_name(f"{instance.node}-{instance.task}")
        name, suffix = base, 2
        while name in taken:
            name, suffix = f"{base}-{suffix}", suffix + 1
        taken.add(name)
        names.append(name)
    return names


# -- the table ------------------------------------------------------------------------
def _entries(entries):
    """(key, value) pairs from tree()/ls() entries (objects with key and value) or plain pairs."""
    for entry in entries or ():
        if isinstance(entry, (tuple, list)):
            yield str(entry[0]), entry[1]
        else:
            yield str(entry.key), entry.value


def routing_table(route_entries, instance_entries, default_interval="5s", reserved_ports=()) -> RoutingTable:
    """The routing table from tree(<prefix>routes/) and tree(<prefix>instances/) entries.

    Every route or instance that cannot be used is skipped and named in
    table.errors. A route claiming a host or service port that an earlier app
    (by name) holds is skipped, naming both. An app without valid instances
    keeps its backend (HAProxy answers 503).
    """
    table = RoutingTable()
    default_ms = parse_duration_ms(default_interval, "default health interval")
    routes = []
    for key, value in sorted(_entries(route_entries)):
        if "/" in key:
            table.errors.append(f"route {key}: ignored, a route key is <prefix>routes/<app>")
            continue
        try:
            routes.append(parse_route(key, value, reserved_ports))
        except RouteError as error:
            table.errors.append(str(error))
    host_owner, port_owner, accepted = {}, {}, []
    for route in routes:
        clashes = [f"host {host} (taken by route {host_owner[host]})" for host in route.hosts if host in host_owner]
        if route.service_port in port_owner:
            clashes.append(f"service_port {route.service_port} (taken by route {port_owner[route.service_port]})")
        if clashes:
            table.errors.append("route {}: skipped, it claims {}".format(route.app, "; ".join(clashes)))
            continue
        for host in route.hosts:
            host_owner[host] = route.app
        if route.service_port is not None:
            port_owner[route.service_port] = route.app
        accepted.append(route)
    by_app = {route.app: [] for route in accepted}
    for key, value in sorted(_entries(instance_entries)):
        try:
            instance = parse_instance(key, value)
        except RouteError as error:
            table.errors.append(str(error))
            continue
        if instance.app in by_app:
            by_app[instance.app].append(instance)
    for route in accepted:
        instances = by_app[route.app]
        stable = sum(1 for instance in instances if instance.track == "stable")
        weights = dict(zip(TRACKS, track_weights(route.canary_weight, stable, len(instances) - stable)))
        backend = Backend(route=route, name=backend_name(route.app), interval_ms=route.health.interval_ms or default_ms)
        for name, instance in zip(_server_names(instances), instances):
            backend.servers.append(Server(name=name, instance=instance, weight=weights[instance.track]))
        table.apps.append(backend)
    return table
