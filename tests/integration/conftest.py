"""Fixtures every integration suite may use."""

import pytest


@pytest.fixture(scope="session")
def docker_client():
    """The machine's Docker engine; the Docker tests are skipped only when none answers (CI runs `make engine`)."""
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as error:
        pytest.skip(f"no Docker engine answers ({error}); run `make engine`")
    yield client
    client.close()
