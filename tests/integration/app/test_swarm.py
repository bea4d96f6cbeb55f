"""The Swarm side of the app module against a real one-node Swarm (tests/support/swarm_node.py).

Each version runs as its own service; these tests create them from real
AppSpecs and check what Docker made of them: the containers' labels, stop
signal and grace, resources, the host-mode port answering HTTP, Docker's
health from a command check, scaling that leaves running containers alone,
reading every version back with its spec, registry credentials that reach the
pull and no output, and Docker's refusals as SwarmError.
"""

import dataclasses
import time
import urllib.request

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.app.spec import parse_spec
from ansible_collections.dockyard.platform.plugins.module_utils.app.swarm import (
    SPEC_LABEL,
    SwarmClient,
    SwarmError,
    service_name,
)
from support.waiting import wait_for

IMAGE = "lab/swarm-test:1"  # a name of its own: the test modules share one Swarm and its images
INDEX = "served by the swarm test"
HTTPD = ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
# Short windows: a stop takes drain + grace, and the app (busybox httpd) ignores SIGURG.
DRAIN_S, GRACE_S = 2, 1
REGISTRY_USER, REGISTRY_PASSWORD = "deployer", "pa55-Kq81-not-in-any-output"


@pytest.fixture(scope="module")
def web_image(swarm_node):
    swarm_node.busybox_image(IMAGE, HTTPD, INDEX)
    return IMAGE


@pytest.fixture(scope="module")
def private_image(swarm_node, web_image):
    """The web image, only in a registry behind a password: a task gets it only with the credentials."""
    registry = swarm_node.start_registry(REGISTRY_USER, REGISTRY_PASSWORD)
    image = f"{registry}/team/web:1"
    swarm_node.exec(
        "docker", "login", "--username", REGISTRY_USER, "--password-stdin", registry, stdin=REGISTRY_PASSWORD
    )
    swarm_node.exec("docker", "tag", web_image, image)
    swarm_node.exec("docker", "push", image)
    swarm_node.exec("docker", "logout", registry)
    swarm_node.exec("docker", "rmi", image)
    return image


@pytest.fixture
def swarm(swarm_node, web_image):
    client = SwarmClient(swarm_node.base_url, timeout=30)
    yield client
    client.close()


def web_spec(name: str, **options):
    return parse_spec(
        {
            "name": name,
            "image": IMAGE,
            "instances": 2,
            "cpus": 0.05,
            "mem": 32,
            "args": HTTPD,
            "env": {"LOG_LEVEL": "info"},
            "labels": {"com.example.team": "shop"},
            "container_port": 8080,
            "health": {"command": "test -f /www/index.html", "interval": "1s", "grace_period": "1s"},
            "upgrade": {"drain_timeout": f"{DRAIN_S}s"},
            "stop_grace_period": f"{GRACE_S}s",
            **options,
        }
    )


def running(swarm, app: str, version_id: str, count: int, healthy: bool = False) -> tuple:
    """Waits until the version runs exactly count tasks (all healthy, when asked); returns them."""

    def settled():
        found = [version for version in swarm.versions(app) if version.version_id == version_id]
        tasks = found[0].running if found else ()
        in_service = [task for task in tasks if task.desired_state == "running"]
        if len(tasks) != count or len(in_service) != count:
            return None
        return tasks if not healthy or all(task.health == "healthy" for task in tasks) else None

    return wait_for(settled, timeout=45, interval=0.2, what=f"{count} running tasks of {app} {version_id}")


def test_a_version_runs_as_designed(swarm, swarm_node):
    spec = web_spec("shop")
    assert swarm.create(spec, spec.instances) is True
    tasks = running(swarm, "shop", spec.version_id, 2, healthy=True)

    # Swarm keeps the grace for its own stop (the container's StopTimeout stays unset); the scaling test times it.
    service = swarm.client.inspect_service(service_name(spec))
    assert service["Spec"]["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"] == (DRAIN_S + GRACE_S) * 10**9
    for task in tasks:
        container = swarm.client.inspect_container(task.container_id)
        labels = container["Config"]["Labels"]
        assert {key: value for key, value in labels.items() if not key.startswith("com.docker.")} == {
            "org.dockyard.app": "shop",
            "org.dockyard.version": spec.version_id,
            "org.dockyard.port": "8080",
            "org.dockyard.drain_timeout": f"{DRAIN_S}s",
            "org.dockyard.stop_signal": "SIGTERM",
            "com.example.team": "shop",
        }
        assert labels["com.docker.swarm.task.id"] == task.id
        assert container["Config"]["StopSignal"] == "SIGURG"
        assert "LOG_LEVEL=info" in container["Config"]["Env"]
        assert (container["HostConfig"]["Memory"], container["HostConfig"]["NanoCpus"]) == (32 * 2**20, 50_000_000)
        assert task.node == "swarm-node"
        host_port = container["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        # Published in host mode on a port Docker picked, reached from outside the lab host.
        with urllib.request.urlopen(f"http://{swarm_node.ip}:{host_port}/", timeout=5) as answer:
            assert (answer.status, answer.read().decode().strip()) == (200, INDEX)
    assert swarm.remove(service_name(spec)) is True


def test_scaling_leaves_running_containers_alone_and_every_stop_waits_the_drain(swarm):
    spec = web_spec("cart")
    swarm.create(spec, 2)
    first = {task.container_id for task in running(swarm, "cart", spec.version_id, 2)}

    assert swarm.scale(service_name(spec), 4) is True
    four = {task.container_id for task in running(swarm, "cart", spec.version_id, 4)}
    assert first <= four

    started = time.monotonic()
    assert swarm.scale(service_name(spec), 2) is True
    two = {task.container_id for task in running(swarm, "cart", spec.version_id, 2)}
    # The app ignores SIGURG: Docker stops the surplus only at drain + grace, with SIGKILL.
    assert time.monotonic() - started >= DRAIN_S + GRACE_S - 0.5
    assert two <= four
    assert swarm.scale(service_name(spec), 2) is False
    swarm.remove(service_name(spec))


def test_versions_run_side_by_side_and_read_back_with_their_specs(swarm):
    old = web_spec("blog")
    # No args: the image's own CMD runs.
    new = web_spec("blog", env={"LOG_LEVEL": "debug"}, args=[], hosts=["blog.example.com"])
    assert old.version_id != new.version_id
    swarm.create(old, 2)
    swarm.create(new, 1)
    running(swarm, "blog", new.version_id, 1)

    versions = {version.name: version for version in swarm.versions("blog")}
    assert set(versions) == {service_name(old), service_name(new)}
    assert (versions[service_name(old)].spec, versions[service_name(old)].replicas) == (old, 2)
    assert (versions[service_name(new)].spec, versions[service_name(new)].replicas) == (new, 1)
    assert versions[service_name(new)].spec.hosts == ("blog.example.com",)

    assert swarm.remove(service_name(old)) is True
    assert [version.name for version in swarm.versions("blog")] == [service_name(new)]
    assert swarm.remove(service_name(old)) is False
    swarm.remove(service_name(new))
    assert swarm.versions("blog") == []


def test_a_failing_command_check_makes_docker_report_unhealthy(swarm):
    spec = web_spec(
        "sick",
        instances=1,
        health={"command": "test -f /www/missing", "interval": "1s", "failures": 1, "grace_period": "0s"},
    )
    swarm.create(spec, 1)

    def unhealthy():
        return any(task.health == "unhealthy" for version in swarm.versions("sick") for task in version.tasks)

    wait_for(unhealthy, timeout=30, interval=0.2, what="Docker to report the sick task unhealthy")
    swarm.remove(service_name(spec))


def test_create_is_idempotent_and_refuses_an_edited_label(swarm, swarm_node):
    spec = web_spec("idem", instances=1)
    assert swarm.create(spec, 1) is True
    assert swarm.create(spec, 1) is False
    # Another instance count or route is the same version: still nothing to create.
    assert swarm.create(dataclasses.replace(spec, instances=3, hosts=("idem.example.com",)), 3) is False
    assert [version.replicas for version in swarm.versions("idem")] == [1]

    edited = '{"name": "idem", "image": "lab/other:2"}'
    swarm_node.exec(
        "docker", "service", "update", "--detach", "--label-add", f"{SPEC_LABEL}={edited}", service_name(spec)
    )
    with pytest.raises(SwarmError, match=rf"service {service_name(spec)}: exists, but its label {SPEC_LABEL}"):
        swarm.create(spec, 1)
    swarm.remove(service_name(spec))


def test_docker_refusals_name_the_service(swarm):
    spec = dataclasses.replace(web_spec("broken"), image="Not A/Valid:image")
    with pytest.raises(SwarmError, match=rf"service {service_name(spec)}: create: 400 .*Not A/Valid:image"):
        swarm.create(spec, 1)
    assert swarm.versions("broken") == []
    with pytest.raises(SwarmError, match=r"service broken--nothing: inspect: 404 .*not found"):
        swarm.scale("broken--nothing", 2)


def test_a_task_that_cannot_pull_reports_why(swarm):
    # localhost:5000 inside the lab host: nothing listens, so the pull fails at once and goes nowhere else.
    spec = web_spec("nopull", image="localhost:5000/missing:1", instances=1)
    swarm.create(spec, 1)

    def failed_task():
        tasks = [task for version in swarm.versions("nopull") for task in version.tasks if task.error]
        return tasks[0] if tasks else None

    task = wait_for(failed_task, timeout=30, interval=0.2, what="a task error of nopull")
    assert "localhost:5000/missing:1" in task.error
    swarm.remove(service_name(spec))


def test_registry_credentials_reach_the_pull_and_nothing_else(swarm, private_image):
    anonymous = web_spec("anonymous", image=private_image, instances=1)
    swarm.create(anonymous, 1)

    def refused_pull():
        return [task.error for version in swarm.versions("anonymous") for task in version.tasks if task.error]

    # The registry refused the pull (the engine logs why), and the image is nowhere else.
    errors = wait_for(refused_pull, timeout=30, what="the anonymous pull to fail")
    assert errors[0] == f"No such image: {private_image}"
    swarm.remove(service_name(anonymous))

    wrong = web_spec(
        "private", image=private_image, registry_auth={"username": REGISTRY_USER, "password": "wrong-pa55"}
    )
    with pytest.raises(
        SwarmError, match=rf"service {service_name(wrong)}: log in to the registry localhost:5000 as "
    ) as refused:
        swarm.create(wrong, 1)
    assert "wrong-pa55" not in str(refused.value)
    assert swarm.versions("private") == []

    spec = web_spec(
        "private", image=private_image, registry_auth={"username": REGISTRY_USER, "password": REGISTRY_PASSWORD}
    )
    assert swarm.create(spec, 1) is True
    running(swarm, "private", spec.version_id, 1)
    shown = repr(swarm.versions("private")) + repr(swarm.client.inspect_service(service_name(spec)))
    assert REGISTRY_PASSWORD not in shown and "wrong-pa55" not in shown
    swarm.remove(service_name(spec))
