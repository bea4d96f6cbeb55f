"""Fixtures every integration suite may use."""

import pytest
from xdist.scheduler import LoadScopeScheduling


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


# The test files that use the machine's one Docker engine (or a Swarm on it). They run on one pytest-xdist worker,
# one after another, so no two tests ever share the engine's events, containers or Swarm.
DOCKER_TESTS = ("tests/integration/app/", "tests/integration/registrator/", "tests/integration/appconfig/test_agent.py")
DOCKER_FIXTURES = {"docker_client", "swarm_host", "swarm_node", "containers", "image"}


class FileAndDockerScheduling(LoadScopeScheduling):
    """pytest-xdist's scheduling by scope, the scope being the test file, or "docker" for every file of DOCKER_TESTS.

    A file stays on one worker, so its module fixtures start once. (xdist's own `loadgroup` cannot do this with
    pytest 9, whose node IDs it can no longer rewrite.)"""

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::")[0]
        return "docker" if path.startswith(DOCKER_TESTS) else path


def pytest_xdist_make_scheduler(config, log):
    return FileAndDockerScheduling(config, log)


def pytest_collection_modifyitems(items):
    """A test that uses Docker outside DOCKER_TESTS would run beside the others: it fails the collection instead."""
    strays = sorted(
        {item.nodeid.split("::")[0] for item in items if DOCKER_FIXTURES & set(item.fixturenames)}
        - {item.nodeid.split("::")[0] for item in items if item.nodeid.startswith(DOCKER_TESTS)}
    )
    if strays:
        raise pytest.UsageError(f"these test files use Docker; add them to DOCKER_TESTS in {__file__}: {strays}")
