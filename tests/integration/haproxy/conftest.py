"""Fixtures for the router's integration tests (real Consul, real HAProxy, the real renderer)."""

import contextlib
import itertools

import pytest
from haproxy_helpers import Backend, Router

_PREFIXES = itertools.count(1)


@pytest.fixture
def router(consul_agent, tmp_path, request, failure_logs):
    """Factory: router(confirm_reload=False, **role variables) -> a started Router with its own KV prefix; stopped
    after the test. confirm_reload: the renderer reloads through the role's helper, as on a router."""
    made = []

    def make(confirm_reload=False, **variables):
        prefix = f"hx{next(_PREFIXES)}-{request.node.name[:40]}/".replace("[", "-").replace("]", "")
        instance = Router(tmp_path, consul_agent, prefix, confirm_reload=confirm_reload, **variables)
        made.append(instance)
        failure_logs.extend(
            [
                ("renderer log", lambda: instance.renderer.log() if instance.renderer is not None else ""),
                ("haproxy log", lambda: _text(instance.haproxy_log)),
                ("live configuration", lambda: _text(instance.live)),
            ]
        )
        return instance.start()

    yield make
    for instance in made:
        instance.stop()


def _text(path):
    return path.read_text() if path.exists() else ""


@pytest.fixture
def backends():
    """Factory: backends(name, ...) -> HTTP servers on loopback, stopped after the test."""
    made = []

    def make(*names):
        servers = [Backend(name) for name in names]
        made.extend(servers)
        return servers

    yield make
    for server in made:
        with contextlib.suppress(OSError):
            server.stop()
