# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The routing schema: the one gate between routing data in Consul and any configuration.

Everything that reaches a router's configuration from Consul (app names,
hosts, paths, addresses, ports, node and task names, versions) is parsed here
into typed values, and configuration is rendered from those values alone. The
same parsers run where the data is written (the registrator, route writes), so
bad data is refused at its source as well as skipped where it is read.

The grammar is strict on purpose. Every pattern is matched whole with
re.fullmatch (a `$` would also match before a trailing newline), no value may
hold a control character, space or quote, and every value has a length limit.

Key layout (the prefix is configurable, default `dockyard/`):
- `<prefix>routes/<app>`: a route spec, JSON
  {"hosts": [...], "service_port": int, "balance": "roundrobin"|"leastconn"|"source",
   "health": {"path": "/...", "expect_status": int, "body_contains": "ok", "interval": "2s"},
   "canary_weight": 0-100, "sticky": bool, "idempotency_header": "Idempotency-Key"}.
  Unknown keys are errors, so typos surface.
- `<prefix>instances/<node>/<app>/<task>`: an instance, JSON
  {"addr": ip, "port": int, "version": str, "track": "stable"|"canary"}.
  The node comes first so that one Consul ACL rule (`key_prefix
  "<prefix>instances/<node>/"`) gives a node's registrator its own instances
  and nothing else.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field

from .config import ConfigError, duration

TRACKS = ("stable", "canary")
BALANCES = ("roundrobin", "leastconn", "source")
ROUTE_KEYS = ("hosts", "service_port", "balance", "health", "canary_weight", "sticky", "idempotency_header")
HEALTH_KEYS = ("path", "expect_status", "body_contains", "interval")

MAX_ROUTE_BYTES = 64 * 1024
MAX_INSTANCE_BYTES = 4 * 1024
MAX_HOSTS = 256
MAX_PATH = 512
MAX_CHECK_TEXT = 128
MIN_INTERVAL_MS = 100
MAX_INTERVAL_MS = 3_600_000

# An app or node name: one key segment that is also safe in HAProxy names and comments.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# A task: a Swarm task ID or a container ID.
_TASK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# A version: an image tag or reference (registry:5000/app:git-abc, sha256:...), or empty.
_VERSION = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9_.:@+/-]{0,254})?")
# An HTTP header name HAProxy takes as one word: RFC 9110 token characters minus its special ones.
_HEADER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A path HAProxy takes as one unquoted word: RFC 3986 characters minus those
# its configuration parser treats specially (# comments, quotes, \ and $).
_PATH = re.compile(r"/[A-Za-z0-9\-._~!&()*+,;=:@/%?]*")
# Text a health check's answer must contain: the path's characters, which HAProxy takes as one unquoted word.
_CHECK_TEXT = re.compile(r"[A-Za-z0-9\-._~!&()*+,;=:@/%?]{1," + str(MAX_CHECK_TEXT) + "}")
# Only the characters of an IPv4 or IPv6 literal: no scope ID (%...), no brackets.
_ADDRESS = re.compile(r"[0-9A-Fa-f:.]{2,39}")
# The platform's KV prefix: folders of key-safe words, ending in "/" (the roles' preflights use the same grammar).
_PREFIX = re.compile(r"(?:[A-Za-z0-9_.-]{1,100}/){1,8}")
_WORD = re.compile(r"[A-Za-z0-9_.-]{1,40}")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-][A-Za-z0-9_./-]{0,299}")


class RouteError(ValueError):
    """Routing data that cannot be used; the message names the key and the field."""


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value, pattern, where: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise RouteError(f"{where}: expected {what}, got {_shown(value)}")
    return value


def _shown(value) -> str:
    """A value for an error message: its repr, cut short (hostile values can be huge)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _key(key) -> str:
    """A Consul key for an error message: as it is when it is a plain path, quoted otherwise."""
    return key if isinstance(key, str) and _PLAIN_KEY.fullmatch(key) else _shown(key)


def _keys(keys) -> str:
    """Unknown keys for an error message: plain words as they are, anything else quoted, at most five."""
    shown = [key if isinstance(key, str) and _WORD.fullmatch(key) else _shown(key) for key in sorted(keys)[:5]]
    return ", ".join(shown) + (", ..." if len(keys) > 5 else "")


def _decode(text, where: str, limit: int):
    if isinstance(text, (bytes, bytearray)):
        if len(text) > limit:
            raise RouteError(f"{where}: value is {len(text)} bytes, more than {limit}")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise RouteError(f"{where}: value is not UTF-8") from None
    if isinstance(text, str):
        if len(text.encode("utf-8")) > limit:
            raise RouteError(f"{where}: value is more than {limit} bytes")
        try:
            return json.loads(text)
        except ValueError as error:
            raise RouteError(f"{where}: invalid JSON: {error}") from None
    return text


# -- values ---------------------------------------------------------------------------
def parse_duration_ms(value, where: str) -> int:
    """Whole milliseconds from a duration with a unit ("500ms", "2s", "1m"), bounded to 100ms-1h."""
    refusal = RouteError(f"{where}: expected a duration such as 2s or 500ms, got {_shown(value)}")
    if not isinstance(value, str) or not value[-1:].isalpha():  # a unit is required here, unlike in daemon configs
        raise refusal
    try:
        milliseconds = duration(value, where) * 1000
    except ConfigError:
        raise refusal from None
    if abs(milliseconds - round(milliseconds)) > 1e-6:
        raise RouteError(f"{where}: expected whole milliseconds, got {value!r}")
    if not MIN_INTERVAL_MS <= round(milliseconds) <= MAX_INTERVAL_MS:
        raise RouteError(f"{where}: must lie between 100ms and 1h, got {value!r}")
    return round(milliseconds)


def parse_name(value, where: str) -> str:
    """An app or node name: letters, digits, '.', '_' and '-', at most 100, not starting with a sign."""
    return _text(
        value, _NAME, where, "letters, digits, '.', '_' and '-' (at most 100, starting with one of the first two)"
    )


def parse_host(value, where: str) -> str:
    """A DNS name in lower case, without its trailing dot (a fully qualified name is the same host)."""
    if not isinstance(value, str) or len(value) > 254:
        raise RouteError(f"{where}: expected a DNS name, got {_shown(value)}")
    host = value.lower()
    host = host[:-1] if host.endswith(".") else host
    if not host or len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise RouteError(f"{where}: {_shown(value)} is not a DNS name")
    return host


def parse_port(value, where: str) -> int:
    if not _integer(value) or not 1 <= value <= 65535:
        raise RouteError(f"{where}: expected a port number 1-65535, got {_shown(value)}")
    return value


def parse_path(value, where: str) -> str:
    """A request path HAProxy can send as one unquoted word (a health check's)."""
    if not isinstance(value, str) or len(value) > MAX_PATH or not _PATH.fullmatch(value):
        raise RouteError(
            f"{where}: expected a path starting with / (at most {MAX_PATH}; no spaces, quotes, # or \\),"
            f" got {_shown(value)}"
        )
    return value


def parse_check_text(value, where: str) -> str:
    """Text a health check's answer must contain, which HAProxy takes as one unquoted word."""
    if not isinstance(value, str) or not _CHECK_TEXT.fullmatch(value):
        raise RouteError(
            f"{where}: expected at most {MAX_CHECK_TEXT} letters, digits or URL punctuation"
            f" (no spaces, quotes, # or \\), got {_shown(value)}"
        )
    return value


def parse_address(value, where: str) -> str:
    """An IPv4 or IPv6 address an instance can be reached at, in its canonical form."""
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise RouteError(f"{where}: expected an IPv4 or IPv6 address (no scope ID), got {_shown(value)}")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise RouteError(f"{where}: {value!r} is not an IP address") from None
    if address.is_unspecified or address.is_multicast or str(address) == "255.255.255.255":
        raise RouteError(f"{where}: {value} cannot be an instance's address")
    return str(address)


# -- route specs ----------------------------------------------------------------------
@dataclass(frozen=True)
class Health:
    path: str | None = None  # None: TCP connect checks
    expect_status: int = 200
    body_contains: str | None = None
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
    idempotency_header: str | None = None


def _health(app: str, raw) -> Health:
    where = f"route {app}: health"
    if not isinstance(raw, dict):
        raise RouteError(f"{where}: expected an object with path, expect_status, interval")
    unknown = sorted(set(raw) - set(HEALTH_KEYS))
    if unknown:
        raise RouteError(f"{where}: unknown key(s) {_keys(unknown)}")
    path = raw.get("path")
    if path is not None:
        parse_path(path, f"{where}.path")
    status = raw.get("expect_status", 200)
    if not _integer(status) or not 100 <= status <= 599:
        raise RouteError(f"{where}.expect_status: expected an HTTP status 100-599, got {_shown(status)}")
    for name in ("expect_status", "body_contains"):
        if name in raw and path is None:
            raise RouteError(f"{where}.{name}: needs health.path (without a path the check is a TCP connect)")
    body = raw.get("body_contains")
    if body is not None:
        parse_check_text(body, f"{where}.body_contains")
    interval = raw.get("interval")
    interval_ms = None if interval is None else parse_duration_ms(interval, f"{where}.interval")
    return Health(path=path, expect_status=status, body_contains=body, interval_ms=interval_ms)


def validate_app(app) -> str:
    return parse_name(app, f"route {_key(app)}: the app name")


def parse_route(app, text, reserved_ports=(), service_port_range=None) -> Route:
    """A Route from a spec (JSON text, bytes or an already decoded object); raises RouteError.

    reserved_ports are the router's own ports that no route may take;
    service_port_range, (first, last), bounds the service ports routes may claim.
    """
    validate_app(app)
    raw = _decode(text, f"route {app}", MAX_ROUTE_BYTES)
    if not isinstance(raw, dict):
        raise RouteError(f"route {app}: expected a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(ROUTE_KEYS))
    if unknown:
        raise RouteError("route {}: unknown key(s) {} (allowed: {})".format(app, _keys(unknown), ", ".join(ROUTE_KEYS)))
    hosts = raw.get("hosts", [])
    if not isinstance(hosts, list) or len(hosts) > MAX_HOSTS:
        raise RouteError(f"route {app}: hosts: expected a list of at most {MAX_HOSTS} DNS names")
    parsed_hosts = []
    for index, value in enumerate(hosts):
        host = parse_host(value, f"route {app}: hosts[{index}]")
        if host not in parsed_hosts:
            parsed_hosts.append(host)
    service_port = raw.get("service_port")
    if service_port is not None:
        parse_port(service_port, f"route {app}: service_port")
        if service_port in set(reserved_ports or ()):
            raise RouteError(f"route {app}: service_port: {service_port} is one of the router's own ports")
        if service_port_range is not None:
            first, last = service_port_range
            if not first <= service_port <= last:
                raise RouteError(
                    f"route {app}: service_port: {service_port} lies outside the service port range {first}-{last}"
                )
    if not parsed_hosts and service_port is None:
        raise RouteError(f"route {app}: needs hosts or service_port (or both)")
    balance = raw.get("balance", "roundrobin")
    if not isinstance(balance, str) or balance not in BALANCES:
        raise RouteError(
            "route {}: balance: expected one of {}, got {}".format(app, ", ".join(BALANCES), _shown(balance))
        )
    health = _health(app, raw["health"]) if raw.get("health") is not None else Health()
    canary_weight = raw.get("canary_weight")
    if canary_weight is not None and (not _integer(canary_weight) or not 0 <= canary_weight <= 100):
        raise RouteError(f"route {app}: canary_weight: expected a percentage 0-100, got {_shown(canary_weight)}")
    sticky = raw.get("sticky", False)
    if not isinstance(sticky, bool):
        raise RouteError(f"route {app}: sticky: expected true or false, got {_shown(sticky)}")
    header = raw.get("idempotency_header")
    if header is not None and (not isinstance(header, str) or not _HEADER.fullmatch(header)):
        raise RouteError(
            f"route {app}: idempotency_header: expected an HTTP header name (letters, digits and -, at most 64),"
            f" got {_shown(header)}"
        )
    return Route(
        app=app,
        hosts=tuple(parsed_hosts),
        service_port=service_port,
        balance=balance,
        health=health,
        canary_weight=canary_weight,
        sticky=sticky,
        idempotency_header=header,
    )


def claims(routes) -> tuple:
    """(routes that keep their hosts and service ports, sorted by app; one message per refused route).

    routes are (create index, Route) pairs: the oldest claim (Consul's create
    index, then the app name) keeps a host or a service port, whatever the
    names; a route claiming any that an older route holds is refused whole.
    """
    host_owner, port_owner, accepted, refusals = {}, {}, [], []
    for _created, route in sorted(routes, key=lambda item: (item[0], item[1].app)):
        clashes = [f"host {host} (taken by route {host_owner[host]})" for host in route.hosts if host in host_owner]
        if route.service_port in port_owner:
            clashes.append(f"service_port {route.service_port} (taken by route {port_owner[route.service_port]})")
        if clashes:
            refusals.append("route {}: skipped, it claims {}".format(route.app, "; ".join(clashes)))
            continue
        for host in route.hosts:
            host_owner[host] = route.app
        if route.service_port is not None:
            port_owner[route.service_port] = route.app
        accepted.append(route)
    return sorted(accepted, key=lambda route: route.app), refusals


def parse_prefix(value, where: str) -> str:
    """The platform's KV prefix (dockyard/ by default): key-safe folders ending in /, no '..' or '.' folder."""
    prefix = _text(value, _PREFIX, where, "a KV folder such as dockyard/ (letters, digits, '.', '_', '-', ending in /)")
    if any(folder in (".", "..") for folder in prefix.split("/")):
        raise RouteError(f"{where}: {prefix!r} holds a '.' or '..' folder")
    return prefix


def route_key(prefix: str, app: str) -> str:
    return f"{prefix}routes/{app}"


# -- instances ------------------------------------------------------------------------
@dataclass(frozen=True)
class Instance:
    app: str
    node: str
    task: str
    addr: str
    port: int
    version: str = ""
    track: str = "stable"

    def key(self, prefix: str) -> str:
        return instance_key(prefix, self.node, self.app, self.task)

    def document(self) -> dict:
        return {"addr": self.addr, "port": self.port, "version": self.version, "track": self.track}

    def value(self) -> bytes:
        return json.dumps(self.document(), sort_keys=True).encode("utf-8")

    @property
    def address(self) -> str:
        """addr:port as HAProxy reads it (IPv6 in brackets)."""
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"{host}:{self.port}"


def instance_key(prefix: str, node: str, app: str, task: str) -> str:
    return f"{prefix}instances/{node}/{app}/{task}"


def node_instances_prefix(prefix: str, node: str) -> str:
    """Everything one node's registrator may write: the rule of its ACL policy."""
    return f"{prefix}instances/{node}/"


def parse_instance_key(key) -> tuple:
    """(node, app, task) from a key relative to <prefix>instances/; raises RouteError."""
    parts = str(key).split("/")
    if len(parts) != 3:
        raise RouteError(f"instance {_key(key)}: expected a key <node>/<app>/<task>")
    node, app, task = parts
    where = f"instance {_key(key)}"
    parse_name(node, f"{where}: node")
    parse_name(app, f"{where}: app")
    _text(task, _TASK, f"{where}: task", "a task or container ID (letters, digits, '.', '_', '-'; at most 128)")
    return node, app, task


def parse_instance(key, text) -> Instance:
    """An Instance from its key relative to <prefix>instances/ and its JSON value; raises RouteError."""
    node, app, task = parse_instance_key(key)
    where = f"instance {key}"
    raw = _decode(text, where, MAX_INSTANCE_BYTES)
    if not isinstance(raw, dict):
        raise RouteError(f"{where}: expected a JSON object")
    unknown = sorted(set(raw) - {"addr", "port", "version", "track"})
    if unknown:
        raise RouteError(f"{where}: unknown key(s) {_keys(unknown)}")
    addr = parse_address(raw.get("addr"), f"{where}: addr")
    port = parse_port(raw.get("port"), f"{where}: port")
    version = _text(
        raw.get("version", ""), _VERSION, f"{where}: version", "an image tag or reference (at most 255 characters)"
    )
    track = raw.get("track", "stable")
    if not isinstance(track, str) or track not in TRACKS:
        raise RouteError(f"{where}: track: expected stable or canary, got {_shown(track)}")
    return Instance(app=app, node=node, task=task, addr=addr, port=port, version=version, track=track)


def validated(instance: Instance) -> Instance:
    """The instance as a router would read it back; raises RouteError (the check before a write)."""
    return parse_instance(f"{instance.node}/{instance.app}/{instance.task}", instance.document())
