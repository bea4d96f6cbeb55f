"""Fixtures shared by the unit and integration suites."""

import sys

import pytest
from support.consul_agent import ConsulAgent


@pytest.fixture(scope="session")
def consul_agent(tmp_path_factory):
    """One Consul server for the whole session; tests use their own key prefixes."""
    agent = ConsulAgent(tmp_path_factory.mktemp("consul"))
    agent.start()
    yield agent
    agent.stop()


@pytest.fixture(scope="session")
def consul_acl_agent(tmp_path_factory):
    """A Consul server with ACLs on and default policy deny."""
    agent = ConsulAgent(tmp_path_factory.mktemp("consul-acl"), acl=True)
    agent.start()
    yield agent
    agent.stop()


@pytest.fixture
def consul_private_agent(tmp_path):
    """A Consul server of the test's own, for tests that stop or restart it."""
    agent = ConsulAgent(tmp_path)
    agent.start()
    yield agent
    agent.stop()


@pytest.fixture
def failure_logs(request):
    """A list of (title, read) pairs; when the test fails, each read() is shown, after the test's processes stopped.

    Fixtures that start processes request it before they start any, so their
    own teardown (which stops them) runs first and the logs are complete.
    """
    logs = []
    yield logs
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for title, read in logs:
            sys.stderr.write(f"--- {title}\n{read()[-6000:]}\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)
