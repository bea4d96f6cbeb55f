"""Fixtures for the registrator's integration tests: the machine's Docker engine, labelled containers, the daemon."""

import contextlib
import subprocess
import uuid

import pytest
from registrator_helpers import NAME_PREFIX, ROOT, Daemon, Kv

docker = pytest.importorskip("docker")


@pytest.fixture(scope="session")
def image(docker_client):
    """The lab base image (built locally by `make base-image`; nothing can be pulled here)."""
    tag = subprocess.run(
        ["bash", str(ROOT / "lab" / "base-image" / "build.sh"), "--print-image"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        docker_client.images.get(tag)
    except docker.errors.ImageNotFound:
        pytest.fail(f"the lab base image {tag} does not exist: run `make base-image`")
    return tag


@pytest.fixture
def containers(docker_client, image):
    """Factory: run(labels, ...) starts command (`sleep infinity`) with 8080 published; all removed afterwards."""
    started = []

    def run(labels=None, publish=True, healthcheck=None, command=("sleep", "infinity"), **options):
        container = docker_client.containers.run(
            image,
            list(command),
            detach=True,
            name=f"{NAME_PREFIX}{uuid.uuid4().hex[:10]}",
            labels=labels or {},
            ports={"8080/tcp": None} if publish else {},
            healthcheck=healthcheck,
            **options,
        )
        started.append(container)
        return container

    yield run
    for container in started:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


@pytest.fixture
def names():
    """A node name and key prefix of the test's own, so tests sharing one Consul never see each other's keys."""
    tag = uuid.uuid4().hex[:8]
    return {"node": f"node-{tag}", "kv_prefix": f"test-{tag}/"}


@pytest.fixture
def registrator(tmp_path, names, failure_logs):
    """Factory: registrator(agent, **settings) -> (Daemon started, Kv); SIGTERMed after the test."""
    started = []

    def make(agent, token: str = "", start: bool = True, name: str = "registrator", **settings):
        consul = {"address": agent.address}
        if token:
            consul["token"] = token
        config = {
            "consul": consul,
            "node": names["node"],
            "address": "192.0.2.10",
            "kv_prefix": names["kv_prefix"],
            "session_ttl": "20s",
            "resync_interval": "30s",
            "log_level": "debug",
            # One per test, shared by its daemons: a restarted daemon finds the drains an earlier one saved.
            "state_dir": str(tmp_path / "registrator-state"),
            **settings,
        }
        daemon = Daemon(tmp_path, config, name)
        if start:
            daemon.start()
            started.append(daemon)
            failure_logs.append((f"registrator log {daemon.log_path}", daemon.log))
        return daemon, Kv(agent, names["kv_prefix"], names["node"])

    yield make
    for daemon in started:
        daemon.stop()
