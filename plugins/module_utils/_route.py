# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing one app's route: the plan, Ansible-free, so tests import it without a module.

The spec passes the routing schema (the same parser every router runs) and
the claim rule (the oldest route keeps a host or a service port) before
anything is written, so a route the routers would skip is refused here, with
the field or the route it clashes with named, instead of becoming a log line
on every router.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass

from .daemon.routing import ROUTE_KEYS, RouteError, claims, parse_route, route_key


@dataclass
class Entry:
    """A route as Consul holds it."""

    app: str
    value: str
    create_index: int
    modify_index: int


# The routers' ports a route's service port is checked against (doc fragment dockyard.platform.router_ports).
ROUTER_PORTS_ARGUMENT_SPEC = dict(
    service_port_range=dict(
        type="dict",
        default=dict(first=10000, last=19999),
        options=dict(first=dict(type="int", required=True), last=dict(type="int", required=True)),
    ),
    reserved_ports=dict(type="list", elements="int", default=[80, 443, 8404]),
)


@dataclass
class Plan:
    key: str
    before: dict | None  # the stored spec (None: no route, or one that is not JSON)
    after: dict | None  # the spec to store (None: delete)
    modify_index: int  # check-and-set index of the write (0: the key must not exist)

    @property
    def changed(self) -> bool:
        return self.before != self.after


def spec_from_params(params: dict) -> dict:
    """The route document from module options: unset options are left out, so the routers' defaults apply."""
    spec = {name: params[name] for name in ROUTE_KEYS if params.get(name) is not None}
    if spec.get("health") is not None:
        spec["health"] = {name: value for name, value in spec["health"].items() if value is not None}
    return spec


def entries(listing, prefix: str) -> dict:
    """app -> Entry from a recurse read of <prefix>routes/ (Consul's JSON list, values base64)."""
    base = route_key(prefix, "")
    found = {}
    for item in listing or ():
        key = item.get("Key", "")
        if not key.startswith(base) or key == base:
            continue
        raw = item.get("Value")
        value = base64.b64decode(raw).decode("utf-8", "replace") if raw else ""
        found[key[len(base) :]] = Entry(key[len(base) :], value, int(item["CreateIndex"]), int(item["ModifyIndex"]))
    return found


def _decoded(value: str):
    try:
        return json.loads(value)
    except ValueError:
        return None


def plan(app: str, spec: dict | None, current: dict, prefix: str, reserved_ports=(), service_port_range=None) -> Plan:
    """What to write for app's route (spec None: remove it); raises RouteError naming the field or the clash."""
    existing = current.get(app)
    before = _decoded(existing.value) if existing else None
    modify_index = existing.modify_index if existing else 0
    key = route_key(prefix, app)
    if spec is None:
        return Plan(key, before, None, modify_index)
    route = parse_route(app, spec, reserved_ports, service_port_range)
    others = []
    for other in current.values():
        if other.app == app:
            continue
        try:
            others.append((other.create_index, parse_route(other.app, other.value)))
        except RouteError:
            continue  # the routers skip it too: it claims nothing
    created = existing.create_index if existing else math.inf  # a new route is younger than every stored one
    accepted, refusals = claims([*others, (created, route)])
    if route not in accepted:
        message = next(text for text in refusals if text.startswith(f"route {app}: "))
        raise RouteError(message.replace(": skipped, it claims", ": refused, it claims", 1))
    return Plan(key, before, spec, modify_index)
