"""Fixtures for the router's integration tests (real Consul, real HAProxy, the real renderer)."""

import contextlib
import itertools
import sys

import pytest
from haproxy_helpers import Backend, Router

_PREFIXES = itertools.count(1)


@pytest.fixture
def router(consul_agent, tmp_path, request):
    """Factory: router(**role variables) -> a started Router with its own KV prefix; stopped after the test."""
    made = []

    def make(**variables):
        prefix = f"hx{next(_PREFIXES)}-{request.node.name[:40]}/".replace("[", "-").replace("]", "")
        instance = Router(tmp_path, consul_agent, prefix, **variables)
        made.append(instance)
        return instance.start()

    yield make
    for instance in made:
        instance.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            if instance.renderer is not None:
                sys.stderr.write(f"--- renderer log\n{instance.renderer.log()[-5000:]}\n")
            if instance.haproxy_log.exists():
                sys.stderr.write(f"--- haproxy log\n{instance.haproxy_log.read_text()[-5000:]}\n")
            if instance.live.exists():
                sys.stderr.write(f"--- live configuration\n{instance.live.read_text()}\n")


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)
