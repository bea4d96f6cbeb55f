"""Fixtures for the router reporter's integration tests: the haproxy suite's Router harness (real HAProxy in
master-worker mode, the role's template, the real renderer), real Consul, and the reporter as a real process."""

import contextlib
import itertools
import sys
from pathlib import Path

import pytest

# The Router harness lives with the haproxy suite; it is imported from there, not copied.
sys.path.insert(0, str(Path(__file__).parents[1] / "haproxy"))

from haproxy_helpers import Backend, Router
from support.engine_process import ENGINES, EngineProcess

REPORTER_CLI = f"{ENGINES}.router.cli"
_PREFIXES = itertools.count(1)


@pytest.fixture
def prefix(request):
    return f"rr{next(_PREFIXES)}-{request.node.name[:40]}/".replace("[", "-").replace("]", "")


@pytest.fixture
def router(tmp_path, prefix, failure_logs):
    """Factory: router(consul, renderer=True) -> a started Router on its own KV prefix; stopped after the test.

    renderer=False runs HAProxy on the bootstrap configuration alone (no renderer, which would need a token)."""
    made = []

    def make(consul, renderer=True):
        instance = Router(tmp_path, consul, prefix)
        made.append(instance)
        failure_logs.append(("haproxy log", lambda: _text(instance.haproxy_log)))
        if renderer:
            failure_logs.append(("renderer log", lambda: instance.renderer.log() if instance.renderer else ""))
            return instance.start()
        instance.render_templates()
        instance.start_haproxy()
        return instance

    yield make
    for instance in made:
        instance.stop()


@pytest.fixture
def reporter(tmp_path, prefix, failure_logs):
    """Factory: reporter(router, consul, node="r1", token="", **settings) -> the started reporter process."""
    made = []

    def make(proxy, consul, node="r1", token="", **settings):
        config = {
            "consul": {"address": consul.address, **({"token": token} if token else {})},
            "node": node,
            "kv_prefix": prefix,
            "master_socket": str(proxy.master_socket),
            "poll_interval": "200ms",
            "min_interval": "200ms",
            "heartbeat": "2s",
            "error_after": "1s",
            "status_file": str(tmp_path / f"status-{node}.json"),
            "log_level": "debug",
            **settings,
        }
        process = EngineProcess(tmp_path, f"router-{node}", REPORTER_CLI, config).start()
        made.append(process)
        failure_logs.append((f"reporter {node} log", process.log))
        return process

    yield make
    for process in made:
        process.stop(10)


@pytest.fixture
def backends():
    made = []

    def make(*names):
        servers = [Backend(name) for name in names]
        made.extend(servers)
        return servers

    yield make
    for server in made:
        with contextlib.suppress(OSError):
            server.stop()


def _text(path):
    return path.read_text() if path.exists() else ""
