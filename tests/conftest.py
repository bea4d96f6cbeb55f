"""Fixtures shared by the unit and integration suites."""

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
