# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a configuration change does to running containers: a signal, or a restart one at a time.

- NodeContainers: this node's containers of one Swarm service, through the registrator's DockerSource.
- AppLock: the Consul lock on P app-config-locks/<app>, held by a session renewed while it is held,
  so that across the cluster one node at a time restarts an app's instances.
- Restarter: a worker thread that restarts a service's local containers one by one, each only after
  Swarm has replaced the previous one and the replacement's instance is registered in Consul, on
  whichever node Swarm placed it. Requests for one service coalesce while they wait; the renderers'
  threads only queue them.
"""

from __future__ import annotations

import logging
import threading
import time

from ..daemon import logs, routing
from ..daemon.consul import ConsulError, kv_path
from ..registrator.docker_source import DockerError, docker
from . import layout

SERVICE_NAME_LABEL = "com.docker.swarm.service.name"
DEFAULT_STOP_TIMEOUT = 10  # Docker's own default when a container sets no StopTimeout
LOCK_TTL = 15.0
REPLACE_TIMEOUT = 120.0  # how long a stopped instance may take to be replaced and registered before we give up


class NodeContainers:
    """This node's containers of a Swarm service (by its service-name label). Raises DockerError."""

    def __init__(self, source):
        self.source = source
        self._lock = threading.Lock()  # one Docker connection, called from several threads

    def of_service(self, service: str, running: bool = True) -> list:
        """Docker's container summaries (Id, Labels, State) of the service on this node."""
        filters = {"label": f"{SERVICE_NAME_LABEL}={service}"}
        if running:
            filters["status"] = "running"
        with self._lock:
            try:
                return self.source.client.api.containers(all=not running, filters=filters)
            except (docker.errors.DockerException, OSError) as error:
                self.source.reset()
                raise DockerError(f"docker engine at {self.source.url}: listing {service} failed: {error}") from None

    def signal(self, container_id: str, signal: str) -> bool:
        with self._lock:
            return self.source.kill(container_id, signal)

    def stop(self, container_id: str) -> None:
        """Docker's stop with the container's own stop timeout: its stop signal (SIGURG) starts the drain."""
        with self._lock:
            attrs = self.source.inspect(container_id)
            if attrs is None:
                return
            timeout = (attrs.get("Config") or {}).get("StopTimeout") or DEFAULT_STOP_TIMEOUT
            try:
                self.source.client.api.stop(container_id, timeout=timeout)
            except docker.errors.NotFound:
                return
            except (docker.errors.DockerException, OSError) as error:
                self.source.reset()
                raise DockerError(
                    f"docker engine at {self.source.url}: stop {container_id[:12]} failed: {error}"
                ) from None


class AppLock:
    """The cluster-wide lock of one app's restarts: a key acquired by a session renewed while it is held."""

    def __init__(self, client, key: str, holder: str, ttl: float = LOCK_TTL):
        self.client = client
        self.key = key
        self.holder = holder  # the node: written as the key's value, for an operator who wonders who holds it
        self.ttl = ttl
        self.session = None
        self._released = threading.Event()

    def acquire(self, stopping: threading.Event, poll: float = 1.0) -> bool:
        """Blocks until the lock is held (True) or stopping is set (False). Raises ConsulError."""
        self.session = self.client.session_create(f"dockyard-app-config {self.holder}", f"{self.ttl:g}s", "release")
        # Renewed while it waits too: another node's restarts can hold the lock for longer than the TTL.
        threading.Thread(target=self._renew, name=f"renew {self.key}", daemon=True).start()
        try:
            while not stopping.is_set():
                if self.client.kv_acquire(self.key, self.holder.encode(), self.session):
                    return True
                stopping.wait(poll)
        except BaseException:
            self._end()
            raise
        self._end()
        return False

    def _renew(self) -> None:
        while not self._released.wait(self.ttl / 3):
            try:
                if not self.client.session_renew(self.session):
                    logs.event(logging.ERROR, "restart lock lost: its session expired", key=self.key)
                    return
            except ConsulError as error:
                logs.event(logging.WARNING, "restart lock renewal failed, retrying", key=self.key, error=error)

    def release(self) -> None:
        try:
            self.client.request("PUT", kv_path(self.key), params={"release": self.session}, body=b"")
        except ConsulError as error:
            logs.event(logging.WARNING, "restart lock not released; its session's end frees it", error=error)
        self._end()

    def _end(self) -> None:
        """Stops the renewals and destroys the session."""
        self._released.set()
        try:
            self.client.session_destroy(self.session)
        except ConsulError as error:
            logs.event(logging.WARNING, "restart lock session not destroyed; its TTL ends it", error=error)


def registered_instances(client, kv_prefix: str, app: str) -> set:
    """The app's instances registered in Consul on every node, as (node, task). Raises ConsulError."""
    root = f"{kv_prefix}instances/"
    found = set()
    for key in client.kv_keys(root):
        try:
            node, key_app, task = routing.parse_instance_key(key[len(root) :])
        except routing.RouteError:
            continue  # not an instance key: the routers refuse it too
        if key_app == app:
            found.add((node, task))
    return found


class Restarter:
    """Restarts services' local containers one at a time, on a thread of its own."""

    def __init__(self, client, containers, kv_prefix: str, node: str, replace_timeout: float = REPLACE_TIMEOUT):
        self.client = client
        self.containers = containers
        self.kv_prefix = kv_prefix
        self.node = node
        self.replace_timeout = replace_timeout
        self.poll = 1.0
        self._pending = {}  # service -> its Definition, in request order
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._work, name="app-config restarts", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()

    def request(self, definition) -> None:
        """Queues a restart of the service's local containers; one already queued absorbs it."""
        with self._cond:
            self._pending.setdefault(definition.service, definition)
            self._cond.notify_all()

    def _next(self):
        with self._cond:
            while not self._pending and not self._stopping.is_set():
                self._cond.wait()
            if self._stopping.is_set():
                return None
            service = next(iter(self._pending))
            return self._pending.pop(service)

    def _work(self) -> None:
        while True:
            definition = self._next()
            if definition is None:
                return
            try:
                self.restart_service(definition)
            except (ConsulError, DockerError) as error:
                logs.event(logging.ERROR, "restart for a config change failed", service=definition.service, error=error)

    def restart_service(self, definition) -> bool:
        """Under the app's lock, each running local container in turn: stop, then wait for its replacement."""
        lock = AppLock(self.client, layout.lock_key(self.kv_prefix, definition.app), self.node)
        if not lock.acquire(self._stopping):
            return False
        try:
            running = self.containers.of_service(definition.service)
            seen = registered_instances(self.client, self.kv_prefix, definition.app)
            for summary in running:
                if self._stopping.is_set():
                    return False
                logs.event(
                    logging.INFO,
                    "restarting for a config change",
                    service=definition.service,
                    container=summary["Id"][:12],
                )
                self.containers.stop(summary["Id"])
                if not self.wait_replaced(definition.app, seen):
                    logs.event(
                        logging.ERROR,
                        "no replacement registered in time; the rest keep what they read at their start",
                        service=definition.service,
                        container=summary["Id"][:12],
                        waited=f"{self.replace_timeout:g}s",
                    )
                    return False
            return True
        finally:
            lock.release()

    def wait_replaced(self, app: str, seen: set) -> bool:
        """Until an instance of the app not in seen is registered, on any node (it then joins seen).

        Swarm places a replacement where it likes: on another node when the cluster has more nodes than
        the service has replicas.
        """
        deadline = time.monotonic() + self.replace_timeout
        while not self._stopping.is_set() and time.monotonic() < deadline:
            new = registered_instances(self.client, self.kv_prefix, app) - seen
            if new:
                seen.update(new)
                return True
            self._stopping.wait(self.poll)
        return False
