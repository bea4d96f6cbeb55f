"""Helpers for the registrator's integration tests: the real daemon as a process, Consul reads, waits."""

import base64
import json
import time
import urllib.error
import uuid
from pathlib import Path

from ansible_collections.dockyard.platform.plugins.module_utils.daemon import routing
from support.engine_process import REGISTRATOR_CLI, EngineProcess
from support.waiting import wait_for

ROOT = Path(__file__).parents[3]
NAME_PREFIX = "dockyard-test-registrator-"


def timed(predicate, timeout: float, what: str) -> float:
    """Seconds until predicate holds (fails past timeout)."""
    started = time.monotonic()
    wait_for(predicate, timeout, 0.01, what)
    return time.monotonic() - started


class Daemon(EngineProcess):
    """One registrator process with its config and log."""

    def __init__(self, workdir: Path, config: dict, name: str = "registrator"):
        super().__init__(workdir, name, REGISTRATOR_CLI, config)


class Kv:
    """Reads of one test's instance keys through a test agent (with its master token when ACLs are on)."""

    def __init__(self, agent, prefix: str, node: str):
        self.agent = agent
        self.prefix = prefix
        self.node = node

    def key(self, app: str, task: str, node: str | None = None) -> str:
        """The instance key in the routing module's layout: <prefix>instances/<node>/<app>/<task>."""
        return routing.instance_key(self.prefix, node or self.node, app, task)

    def entry(self, key: str):
        """The key's entry (Value decoded, Session) or None."""
        try:
            found, _headers = self.agent.request("GET", f"/v1/kv/{key}")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise
        except OSError:
            return None
        entry = found[0]
        entry["Value"] = json.loads(base64.b64decode(entry["Value"])) if entry.get("Value") else None
        return entry

    def keys(self) -> list:
        try:
            return self.agent.keys(f"{self.prefix}instances/")
        except OSError:
            return []

    def sessions(self, node_name: str | None = None) -> list:
        name = f"dockyard-registrator {node_name or self.node}"
        found, _headers = self.agent.request("GET", "/v1/session/list")
        return [session["ID"] for session in found if session.get("Name") == name]

    def session(self) -> str | None:
        try:
            found = self.sessions()
        except OSError:
            return None
        return found[0] if len(found) == 1 else None


def host_port(container, port: int = 8080) -> int:
    container.reload()
    return int(container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"][0]["HostPort"])


def task_of(container) -> str:
    return container.labels["com.docker.swarm.task.id"]


def swarm_labels(task: str | None = None) -> dict:
    """The labels Swarm puts on a task's container (the registrator registers nothing else): IDs of 25 characters."""
    return {
        "com.docker.swarm.service.id": "svc" + uuid.uuid4().hex[:22],
        "com.docker.swarm.task.id": task or "tsk" + uuid.uuid4().hex[:22],
    }


def app_labels(app="web", port="8080", version="1.0.0", **extra):
    """The labels of a Swarm task of a Dockyard app (extra: more labels, for example a track; None drops one)."""
    labels = {"org.dockyard.app": app, "org.dockyard.port": port, "org.dockyard.version": version, **swarm_labels()}
    labels.update(extra)
    return {key: value for key, value in labels.items() if value is not None}
