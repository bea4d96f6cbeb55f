# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic: a container's attributes to an instance, and desired vs owned keys to puts and deletes.

Labels (the contract with the app module, Swarm and the routers):
  org.dockyard.app            the app's name; a container without it is none of ours
  org.dockyard.version        the version it runs (an image tag or reference)
  org.dockyard.track          stable (when absent) or canary
  org.dockyard.port           the container's TCP port, published on the host
  com.docker.swarm.service.id set by Swarm on every task's container
  com.docker.swarm.task.id    set by Swarm; the instance's <task>
  org.dockyard.http_check     the app's HTTP check, passed once before the instance is registered (readiness.py)

Only a task of a Swarm service is an instance: a container started with a plain
`docker run --label org.dockyard.app=shop` is skipped (and logged once), so a
container cannot join an app's backends just by wearing its label.

The key layout, the instance grammar and the check before a write belong to
the routing module (..daemon.routing): <prefix>instances/<node>/<app>/<task>,
and every instance goes through routing.validated() before it is written, so
an instance the routers would refuse is refused here, at its source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..daemon import routing
from ..daemon.routing import TRACKS, Instance, RouteError

APP_LABEL = "org.dockyard.app"
VERSION_LABEL = "org.dockyard.version"
TRACK_LABEL = "org.dockyard.track"
PORT_LABEL = "org.dockyard.port"
SERVICE_LABEL = "com.docker.swarm.service.id"
TASK_LABEL = "com.docker.swarm.task.id"


class Skip(ValueError):
    """A container labelled as an app task that cannot be registered; the message names it and the label."""


def labels_of(attrs: dict) -> dict:
    return (attrs.get("Config") or {}).get("Labels") or {}


def name_of(attrs: dict) -> str:
    return (attrs.get("Name") or "").lstrip("/") or str(attrs.get("Id", ""))[:12]


def is_app(labels: dict) -> bool:
    return APP_LABEL in labels


def is_swarm_task(labels: dict) -> bool:
    """Whether the labels are a Swarm task's: a service ID and a task ID."""
    return bool(labels.get(SERVICE_LABEL)) and bool(labels.get(TASK_LABEL))


def _valid_name(value) -> bool:
    try:
        routing.parse_name(value, "name")
    except RouteError:
        return False
    return True


def key_for(prefix: str, node: str, labels: dict) -> str | None:
    """The key a container's instance has (or would have), from its labels alone; None when it cannot have one."""
    if not (is_app(labels) and is_swarm_task(labels)):
        return None
    key = routing.instance_key(prefix, node, labels[APP_LABEL], labels[TASK_LABEL])
    try:
        routing.parse_instance_key(key[len(f"{prefix}instances/") :])
    except RouteError:
        return None
    return key


def health_of(attrs: dict) -> str | None:
    """The container's health status (starting, healthy, unhealthy), or None without a HEALTHCHECK."""
    health = (attrs.get("State") or {}).get("Health")
    return health.get("Status") if health else None


def serving(attrs: dict) -> bool:
    """Running, and healthy when it has a HEALTHCHECK."""
    state = attrs.get("State") or {}
    return bool(state.get("Running")) and health_of(attrs) in (None, "healthy")


def published_port(attrs: dict, port: int) -> int | None:
    """The host port that <port>/tcp is published on (its first binding), or None."""
    bindings = ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{port}/tcp") or []
    for binding in bindings:
        try:
            host_port = int(binding.get("HostPort") or 0)
        except (TypeError, ValueError):
            continue
        if 0 < host_port < 65536:
            return host_port
    return None


def instance_from(attrs: dict, node: str, address: str) -> Instance | None:
    """The instance a container stands for; None when it is not an app task; Skip when it cannot be one.

    The instance returned has passed routing.validated(): it is what every router would read back.
    """
    labels = labels_of(attrs)
    if not is_app(labels):
        return None
    name = name_of(attrs)
    if not is_swarm_task(labels):
        raise Skip(
            f"container {name}: label {APP_LABEL} on a container that is not a Swarm service's task"
            f" (labels {SERVICE_LABEL} and {TASK_LABEL} missing): only the platform's services are registered"
        )
    app = labels[APP_LABEL]
    if not _valid_name(app):
        raise Skip(
            f"container {name}: label {APP_LABEL}={app!r} is not an app name"
            " (letters, digits, '.', '_' and '-', at most 100, starting with a letter or digit)"
        )
    task = labels[TASK_LABEL]
    if "/" in task:
        raise Skip(f"container {name}: label {TASK_LABEL}={task!r} is not a task ID (one key segment)")
    raw_port = labels.get(PORT_LABEL)
    if raw_port is None:
        raise Skip(f"container {name}: label {PORT_LABEL} is missing")
    try:
        port = int(str(raw_port).strip())
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise Skip(f"container {name}: label {PORT_LABEL}={raw_port!r} is not a TCP port")
    host_port = published_port(attrs, port)
    if host_port is None:
        raise Skip(f"container {name}: label {PORT_LABEL}={port}: {port}/tcp is not published on the host")
    track = labels.get(TRACK_LABEL) or "stable"
    if track not in TRACKS:
        raise Skip(f"container {name}: label {TRACK_LABEL}={track!r} is not stable or canary")
    instance = Instance(
        app=app,
        node=node,
        task=task,
        addr=address,
        port=host_port,
        version=str(labels.get(VERSION_LABEL, "")),
        track=track,
    )
    try:
        return routing.validated(instance)
    except RouteError as error:
        raise Skip(f"container {name}: the routers would refuse its instance: {error}") from None


def owned(entries: dict, prefix: str, node: str) -> dict:
    """The entries of a recurse read of <prefix>instances/<node>/ that are node's instances (<node>/<app>/<task>).

    Keys under the node's prefix that are not instance keys (a wrong depth, a bad segment) are node's too: a
    resync deletes them, as nothing runs for them.
    """
    mine = routing.node_instances_prefix(prefix, node)
    return {key: entry for key, entry in entries.items() if key.startswith(mine)}


def _same(value: bytes, document: dict) -> bool:
    try:
        return json.loads(value) == document
    except ValueError:
        return False


@dataclass
class Plan:
    puts: list = field(default_factory=list)  # keys to (re)write under our session
    deletes: list = field(default_factory=list)  # keys we own that nothing runs for

    def __bool__(self) -> bool:
        return bool(self.puts or self.deletes)


def plan(desired: dict, current: dict, session: str) -> Plan:
    """What to change so that current (key -> (value, session)) matches desired (key -> Instance).

    A key is written when missing, when its value differs, or when it is not held by our session; a key
    of ours that nothing runs for is deleted.
    """
    result = Plan()
    for key in sorted(desired):
        found = current.get(key)
        if found is None or found[1] != session or not _same(found[0], desired[key].document()):
            result.puts.append(key)
    result.deletes = sorted(key for key in current if key not in desired)
    return result
