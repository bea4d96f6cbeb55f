"""Fixtures for the app module's tests: a real ZooKeeper on loopback and sessions with it; a real one-node Swarm
with the real registrator daemon on its engine; a Consul client and a KV prefix of the test module's own."""

import uuid

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.app.ledger import Session, parse_settings
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul import ConsulClient
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul import (
    parse_settings as consul_settings,
)
from support.engine_process import REGISTRATOR_CLI, EngineProcess
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


@pytest.fixture(scope="session")
def swarm_host():
    """A lab host running a one-node Swarm, started once for every app test (about 25 s); removed afterwards."""
    if not engine_answers():
        pytest.skip("no Docker engine answers; run `make engine`")
    node = SwarmNode().start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def swarm_node(swarm_host):
    """The shared Swarm, left without services by each test module that used it."""
    yield swarm_host
    swarm_host.remove_services()


@pytest.fixture(scope="module")
def prefix():
    return f"test-{uuid.uuid4().hex[:8]}/"


@pytest.fixture(scope="module")
def consul(consul_agent):
    return ConsulClient(consul_settings({"address": consul_agent.address}, environ={}))


@pytest.fixture(scope="module")
def zk_settings(zookeeper):
    return parse_settings(zookeeper.hosts, f"/test-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def registrator(swarm_node, consul_agent, prefix, tmp_path_factory):
    """The real registrator daemon on the Swarm node's engine; instance addresses are the node's, reachable here."""
    workdir = tmp_path_factory.mktemp("registrator")
    config = {
        "consul": {"address": consul_agent.address},
        "node": "swarm-node",
        "address": swarm_node.ip,
        "kv_prefix": prefix,
        "session_ttl": "20s",
        "resync_interval": "5s",
        "log_level": "debug",
        "docker_url": swarm_node.base_url,
        "state_dir": str(workdir / "state"),
    }
    daemon = EngineProcess(workdir, "registrator", REGISTRATOR_CLI, config).start()
    yield daemon
    daemon.stop()
