"""Fixtures for the app module's tests: a real ZooKeeper on loopback and sessions with it; a real one-node Swarm."""

import uuid

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.app.ledger import Session, parse_settings
from support.swarm_node import SwarmNode, engine_answers
from support.zookeeper import ZooKeeperServer


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory):
    """One ZooKeeper for the whole session; tests use chroots of their own."""
    server = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def zookeeper_private(tmp_path, failure_logs):
    """A ZooKeeper of the test's own, for tests that stop or restart it."""
    server = ZooKeeperServer(tmp_path)
    failure_logs.append(("zookeeper log", server.log_tail))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def chroot():
    return f"/test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sessions(zookeeper, chroot):
    """Factory: sessions(server=None, **settings) -> an open Session in this test's chroot; all closed afterwards."""
    opened = []

    def open_session(server=None, **settings):
        session = Session(parse_settings((server or zookeeper).hosts, chroot, **settings)).open()
        opened.append(session)
        return session

    yield open_session
    for session in opened:
        session.close()


@pytest.fixture(scope="module")
def swarm_node():
    """A lab host running a one-node Swarm, shared by a test module (about 10 s to start); removed afterwards."""
    if not engine_answers():
        pytest.skip("no Docker engine answers; run `make engine`")
    node = SwarmNode().start()
    yield node
    node.stop()
