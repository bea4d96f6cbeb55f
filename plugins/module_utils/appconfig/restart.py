# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a configuration change does to running containers: a signal, or a restart one at a time.

- NodeContainers: this node's containers of one Swarm service, through the registrator's DockerSource.
- AppLock: the Consul lock on P app-config-locks/<app>, held by a session renewed while it is held,
  so that across the cluster one node at a time restarts an app's instances.
- Restarter: a worker thread that restarts a service's local containers one by one, each only after
  Swarm has replaced the previous one and its instance is registered in Consul. Requests for one
  service coalesce while they wait; the renderers' threads only queue them.
"""

from __future__ import annotations

import logging
import threading
import time

from ..daemon import logs, routing
from ..daemon.consul import ConsulError, kv_path
from ..registrator.docker_source import DockerError, docker
from ..registrator.instances import APP_LABEL, TASK_LABEL
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
        while not stopping.is_set():
            if self.client.kv_acquire(self.key, self.holder.encode(), self.session):
                threading.Thread(target=self._renew, name=f"renew {self.key}", daemon=True).start()
                return True
            stopping.wait(poll)
        self._destroy()
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
        self._released.set()
        try:
            self.client.request("PUT", kv_path(self.key), params={"release": self.session}, body=b"")
        except ConsulError as error:
            logs.event(logging.WARNING, "restart lock not released; its session's end frees it", error=error)
        self._destroy()

    def _destroy(self) -> None:
        try:
            self.client.session_destroy(self.session)
        except ConsulError as error:
            logs.event(logging.WARNING, "restart lock session not destroyed; its TTL ends it", error=error)


def replacement(before: set, summaries: list) -> dict | None:
    """A running container of the service that was not among `before`: Swarm's replacement."""
    for summary in summaries:
        if summary["Id"] not in before:
            return summary
    return None


def instance_key_of(kv_prefix: str, node: str, labels: dict) -> str | None:
    """Where the registrator registers the container's instance; None for a container that is not an app task."""
    if not labels.get(APP_LABEL) or not labels.get(TASK_LABEL):
        return None
    return routing.instance_key(kv_prefix, node, labels[APP_LABEL], labels[TASK_LABEL])


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
            seen = {summary["Id"] for summary in running}
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
                if not self.wait_replaced(definition.service, seen):
                    logs.event(
                        logging.ERROR,
                        "no replacement registered here in time; the rest keep what they read at their start",
                        service=definition.service,
                        container=summary["Id"][:12],
                        waited=f"{self.replace_timeout:g}s",
                    )
                    return False
            return True
        finally:
            lock.release()

    def wait_replaced(self, service: str, seen: set) -> bool:
        """Until a new running container of the service is here and its instance is in Consul (it then joins seen)."""
        deadline = time.monotonic() + self.replace_timeout
        while not self._stopping.is_set() and time.monotonic() < deadline:
            new = replacement(seen, self.containers.of_service(service))
            if new is not None and self._registered(new.get("Labels") or {}):
                seen.add(new["Id"])
                return True
            self._stopping.wait(self.poll)
        return False

    def _registered(self, labels: dict) -> bool:
        key = instance_key_of(self.kv_prefix, self.node, labels)
        if key is None:
            return True  # not an app task: nothing registers it, running is all there is to wait for
        return self.client.get(kv_path(key)).status == 200
