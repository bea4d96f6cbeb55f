# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The routing table: route specs and instances from Consul KV, as HAProxy needs them.

The data is parsed by the routing schema (daemon/routing.py), the one gate
between Consul and configuration; the table holds only the typed values it
returns. Per app a backend with its servers and weights; bad values and
conflicts (two routes claiming a host or a service port) become errors in the
table, never exceptions, so one bad key cannot stop the rest from rendering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from ..daemon.routing import (
    TRACKS,
    Health,
    Instance,
    Route,
    RouteError,
    claims,
    parse_duration_ms,
    parse_instance,
    parse_route,
)
from .template import template_function

MAX_WEIGHT = 256  # HAProxy server weights are 0-256
EQUAL_WEIGHT = 100  # each server's weight when no split applies
HOSTS_PER_LINE = 16  # HAProxy reads at most 64 words on a configuration line


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
    def host_lines(self) -> list:
        """(backend, hosts) per app, its hosts cut into groups that fit on one HAProxy line."""
        return [
            (backend, backend.route.hosts[start : start + HOSTS_PER_LINE])
            for backend in self.apps
            for start in range(0, len(backend.route.hosts), HOSTS_PER_LINE)
        ]

    @property
    def service_ports(self) -> list:
        """(port, backend) for every app with a service port, sorted by port."""
        return sorted(
            ((b.route.service_port, b) for b in self.apps if b.route.service_port is not None), key=lambda x: x[0]
        )


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


def backend_name(app: str) -> str:
    return "app_" + app


def _server_names(instances: list) -> list:
    """<node>-<task> per instance (both parsed by the schema, so valid HAProxy names), made unique."""
    names, taken = [], set()
    for instance in instances:
        base = f"{instance.node}-{instance.task}"
        name, suffix = base, 2
        while name in taken:
            name, suffix = f"{base}-{suffix}", suffix + 1
        taken.add(name)
        names.append(name)
    return names


# -- the table ------------------------------------------------------------------------
def _entries(entries):
    """(key, value, create index) from tree()/ls() entries (objects with key, value, create_index) or tuples."""
    for entry in entries or ():
        if isinstance(entry, (tuple, list)):
            yield str(entry[0]), entry[1], entry[2] if len(entry) > 2 else 0
        else:
            yield str(entry.key), entry.value, getattr(entry, "create_index", 0)


def routing_table(
    route_entries, instance_entries, default_interval="5s", reserved_ports=(), service_port_range=None
) -> RoutingTable:
    """The routing table from tree(<prefix>routes/) and tree(<prefix>instances/) entries.

    Every route or instance that cannot be used is skipped and named in
    table.errors. A route claiming a host or service port that an older route
    (by Consul's create index, then by name) holds is skipped, naming both.
    An app without valid instances keeps its backend (HAProxy answers 503).
    """
    table = RoutingTable()
    default_ms = parse_duration_ms(default_interval, "default health interval")
    if service_port_range is not None:
        service_port_range = tuple(service_port_range)
    routes = []
    for key, value, created in sorted(_entries(route_entries)):
        try:
            routes.append((created, parse_route(key, value, reserved_ports, service_port_range)))
        except RouteError as error:
            table.errors.append(str(error))
    accepted, refusals = claims(routes)
    table.errors.extend(refusals)
    by_app = {route.app: [] for route in accepted}
    for key, value, _created in sorted(_entries(instance_entries)):
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


@template_function("routing_table")
def _routing_table_function(scope, route_entries, instance_entries, **options):
    """routing_table() in templates: quarantined entries left out, every skipped route or instance warned."""
    table = routing_table(scope.admitted(route_entries), scope.admitted(instance_entries), **options)
    for message in table.errors:
        scope.warn(message)
    return table
