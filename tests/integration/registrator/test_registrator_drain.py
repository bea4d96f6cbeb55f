"""Must show: drain on stop. A task labelled for drain, stopped with SIGURG (its stop signal) and a 20 s stop
timeout, leaves Consul within 1 s while it keeps serving, gets SIGTERM from the registrator once its 2 s window
has passed and exits long before Docker's SIGKILL; a SIGURG kill of an unlabelled task is not a stop; a bad drain
label stops the task at once with an error naming the label; a registrator restarted mid-drain finishes it."""

import contextlib
import threading
import time
import urllib.request
import uuid

import pytest
from registrator_helpers import NAME_PREFIX, app_labels, host_port, task_of, timed, wait_for

docker = pytest.importorskip("docker")

DRAIN = "2s"
STOP_TIMEOUT = 20
# A tiny HTTP server that, like many apps, exits at once on SIGTERM; as PID 1 it needs a handler for that.
SERVER = """
import http.server, os, signal
def stop(*_):
    print("SIGTERM received", flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *_):
        pass
http.server.HTTPServer(("", 8080), Handler).serve_forever()
"""


@pytest.fixture
def app_tasks(docker_client, image):
    """Factory: run(labels) starts SERVER as Swarm would start a drained service's task: stop signal SIGURG and a
    stop timeout (its stop_grace_period) of 20 s. The SDK's containers.run() cannot set a stop timeout."""
    api, started = docker_client.api, []

    def run(labels):
        created = api.create_container(
            image,
            ["python3", "-u", "-c", SERVER],
            name=f"{NAME_PREFIX}{uuid.uuid4().hex[:10]}",
            labels=labels,
            ports=[8080],
            host_config=api.create_host_config(port_bindings={8080: None}),
            stop_signal="SIGURG",
            stop_timeout=STOP_TIMEOUT,
        )
        container = docker_client.containers.get(created["Id"])
        started.append(container)
        container.start()
        wait_for(lambda: answers(container), 10, what=f"{container.name} to serve")
        return container

    yield run
    for container in started:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def answers(container) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{host_port(container)}/", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def running(container) -> bool:
    try:
        container.reload()
    except docker.errors.NotFound:
        return False
    return container.attrs["State"]["Running"]


def drained(**labels) -> dict:
    return app_labels("web", **{"org.dockyard.drain_timeout": DRAIN, "org.dockyard.stop_signal": "SIGTERM", **labels})


def stop_in_background(container) -> threading.Thread:
    """`docker stop` without a timeout, so the engine uses the container's own (20 s), as Swarm does."""
    stopper = threading.Thread(target=container.stop)
    stopper.start()
    return stopper


def registered(kv, container) -> dict | None:
    return kv.entry(kv.key("web", task_of(container)))


def test_a_stop_withdraws_at_once_serves_through_the_window_then_sends_sigterm(consul_agent, registrator, app_tasks):
    daemon, kv = registrator(consul_agent)
    wait_for(kv.session, 10, what="the registrator's session")
    web = app_tasks(drained())
    wait_for(lambda: registered(kv, web), 2, what="registration")

    started = time.monotonic()
    stopper = stop_in_background(web)
    timed(lambda: registered(kv, web) is None, 1, "the key of a draining task to go")
    assert running(web) and answers(web), "the task must keep serving what it was sent during the drain window"

    stopper.join(STOP_TIMEOUT + 5)
    stopped_after = time.monotonic() - started
    print(f"docker stop returned {stopped_after:.2f}s after it began (drain window {DRAIN}, stop timeout 20s)")
    assert 2 <= stopped_after < 8, "SIGTERM must come after the window, long before Docker's SIGKILL"
    web.reload()
    assert web.attrs["State"]["ExitCode"] == 0, "the app exited on its own SIGTERM handler, not on SIGKILL"
    assert b"SIGTERM received" in web.logs()
    assert registered(kv, web) is None
    steps = ("withdrawn for drain", "drained, stop signal sent")
    for step in steps:
        assert daemon.log_lines(step, web.name, "level=info"), f"no log line {step!r} naming {web.name}"


def test_a_sigurg_kill_of_an_unlabelled_task_is_not_a_stop(consul_agent, registrator, app_tasks):
    daemon, kv = registrator(consul_agent)
    wait_for(kv.session, 10, what="the registrator's session")
    web = app_tasks(app_labels("web"))
    wait_for(lambda: registered(kv, web), 2, what="registration")

    web.kill(signal="SIGURG")
    wait_for(lambda: daemon.log_lines("control signal, instance kept", web.id[:12]), 2, what="the kill event")
    assert registered(kv, web) is not None
    assert running(web) and answers(web)


@pytest.mark.parametrize(
    ("labels", "error"),
    [
        ({"org.dockyard.drain_timeout": "forever"}, "label org.dockyard.drain_timeout: expected a duration"),
        ({"org.dockyard.drain_timeout": "2h"}, "label org.dockyard.drain_timeout: must be at most 3600s"),
        ({"org.dockyard.stop_signal": "SIGNOPE"}, "label org.dockyard.stop_signal: 'SIGNOPE' is not one of"),
    ],
)
def test_a_bad_drain_label_stops_the_task_at_once_and_names_the_label(
    consul_agent, registrator, app_tasks, labels, error
):
    daemon, kv = registrator(consul_agent)
    wait_for(kv.session, 10, what="the registrator's session")
    web = app_tasks(drained(**labels))
    wait_for(lambda: registered(kv, web), 2, what="registration")

    started = time.monotonic()
    stopper = stop_in_background(web)
    timed(lambda: registered(kv, web) is None, 1, "the key of a stopping task to go")
    stopper.join(STOP_TIMEOUT + 5)
    stopped_after = time.monotonic() - started
    print(f"bad label {labels}: docker stop returned after {stopped_after:.2f}s")
    assert stopped_after < 2, "a bad label must not leave the task half-stopped until Docker's SIGKILL"
    assert b"SIGTERM received" in web.logs()
    refused = daemon.log_lines("level=error", "drain label refused", web.name)
    assert len(refused) == 1 and error in refused[0], refused


def test_a_registrator_restarted_mid_drain_keeps_the_task_out_and_still_sends_sigterm(
    consul_agent, registrator, app_tasks
):
    first, kv = registrator(consul_agent, name="first")
    wait_for(kv.session, 10, what="the first run's session")
    web = app_tasks(drained(**{"org.dockyard.drain_timeout": "4s"}))
    wait_for(lambda: registered(kv, web), 2, what="registration")

    started = time.monotonic()
    stopper = stop_in_background(web)
    timed(lambda: registered(kv, web) is None, 1, "the key of a draining task to go")
    assert first.stop() == 0

    second, _kv = registrator(consul_agent, name="second")
    wait_for(lambda: second.log_lines("resynced"), 10, what="the second run's first resync")
    assert registered(kv, web) is None, "a restarted registrator must not register a task that is draining"
    assert running(web)
    stopper.join(STOP_TIMEOUT + 5)
    stopped_after = time.monotonic() - started
    assert 4 <= stopped_after < 10, f"SIGTERM after the 4s window, long before the SIGKILL: {stopped_after:.2f}s"
    assert b"SIGTERM received" in web.logs()
    assert second.log_lines("drain resumed after a restart", web.name)
    assert second.log_lines("drained, stop signal sent", web.name)
