"""Must show: readiness before traffic. A task labelled with an HTTP check whose path answers 503 for its first
~4 s is not in Consul before its path answers 200, and is within about a probe interval after; a labelled task whose
path never answers is never registered (nor one whose app hangs), while an unlabelled one beside it is within 2 s;
a kill ends the probing."""

import json
import threading
import time

import pytest
from registrator_helpers import app_labels, task_of, wait_for

docker = pytest.importorskip("docker")

NOT_READY_S = 4
PROBE_INTERVAL_MS = 500
# Answers 503 to /ready until /tmp/ready exists, then 200 with a body holding "ready"; /hang never answers.
SERVER = """
import http.server, os, time
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/hang":
            time.sleep(3600)
        ready = os.path.exists("/tmp/ready")
        body = b"all ready" if ready else b"starting"
        self.send_response(200 if ready else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *_):
        pass
http.server.ThreadingHTTPServer(("", 8080), Handler).serve_forever()
"""


def check_label(path: str = "/ready", **extra) -> dict:
    check = {
        "path": path,
        "expect_status": 200,
        "host": "web.example.com",
        "interval_ms": PROBE_INTERVAL_MS,
        "timeout_ms": 1000,
        **extra,
    }
    return {"org.dockyard.http_check": json.dumps(check, sort_keys=True, separators=(",", ":"))}


@pytest.fixture
def app_tasks(containers):
    """Factory: run(labels) starts SERVER with 8080 published, as a Swarm task of the app would run."""
    return lambda labels: containers(labels=labels, command=("python3", "-u", "-c", SERVER))


class FirstSeen:
    """Polls a key every 100 ms from a thread and records when it first appears."""

    def __init__(self, kv, key: str):
        self.kv, self.key = kv, key
        self.at = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self):
        while not self._stop.is_set() and self.at is None:
            if self.kv.entry(self.key) is not None:
                self.at = time.monotonic()
            self._stop.wait(0.1)

    def stop(self):
        self._stop.set()
        self._thread.join()


def test_a_task_is_registered_only_once_its_health_path_answers(consul_agent, registrator, app_tasks):
    # The probe goes to the address the instance is registered with: this machine, where the port is published.
    daemon, kv = registrator(consul_agent, address="127.0.0.1")
    wait_for(kv.session, 10, what="the registrator's session")
    web = app_tasks(app_labels("web", **check_label(body_contains="ready")))
    key = kv.key("web", task_of(web))
    seen = FirstSeen(kv, key)
    try:
        wait_for(lambda: daemon.log_lines("not ready yet", web.name), 10, what="a probe answered 503")
        time.sleep(NOT_READY_S)
        assert seen.at is None, "registered while its health path answered 503"
        ready_at = time.monotonic()
        web.exec_run(["touch", "/tmp/ready"])
        wait_for(lambda: seen.at, 5, what=f"{key} to appear once ready")
    finally:
        seen.stop()
    print(f"registered {seen.at - ready_at:.2f}s after the app was ready")
    assert ready_at <= seen.at <= ready_at + PROBE_INTERVAL_MS / 1000 + 1
    assert kv.entry(key)["Value"]["addr"] == "127.0.0.1"
    (ready,) = daemon.log_lines("level=info", "msg=ready")
    assert web.name in ready and 'seen="status 200"' in ready
    probes = int(ready.split("probes=")[1].split()[0])
    assert probes >= NOT_READY_S * 1000 // PROBE_INTERVAL_MS, "probed every interval while not ready"

    time.sleep(2 * PROBE_INTERVAL_MS / 1000)
    count = len(daemon.log_lines("not ready yet"))
    time.sleep(2 * PROBE_INTERVAL_MS / 1000)
    assert len(daemon.log_lines("not ready yet")) == count, "a registered task is not probed again"
    assert daemon.alive()


def test_a_task_whose_path_never_answers_is_never_registered(consul_agent, registrator, app_tasks, containers):
    daemon, kv = registrator(consul_agent, address="127.0.0.1", resync_interval="1s")
    wait_for(kv.session, 10, what="the registrator's session")
    silent = containers(labels=app_labels("web", **check_label()))  # sleeps: nothing listens on 8080
    hung = app_tasks(app_labels("web", **check_label("/hang", timeout_ms=3000)))
    wait_for(lambda: daemon.log_lines("waiting for its health check", hung.name), 10, what="hung probed")
    started = time.monotonic()
    plain = containers(labels=app_labels("web"))
    wait_for(lambda: kv.entry(kv.key("web", task_of(plain))), 2, what="the unlabelled task to appear")
    print(f"the unlabelled task registered {time.monotonic() - started:.2f}s after docker run, a probe hanging")

    time.sleep(5)  # probes every 0.5 s, resyncs every 1 s
    assert kv.keys() == [kv.key("web", task_of(plain))]
    assert len(daemon.log_lines("not ready yet", silent.name)) >= 5
    assert any("timed out" in line for line in daemon.log_lines("not ready yet", hung.name))

    silent.kill()
    wait_for(lambda: daemon.log_lines("readiness probing cancelled", silent.name), 2, what="cancelled")
    count = len(daemon.log_lines("not ready yet", silent.name))
    time.sleep(1.5)
    assert len(daemon.log_lines("not ready yet", silent.name)) == count, "a killed task is not probed again"
    assert kv.keys() == [kv.key("web", task_of(plain))]
    assert daemon.alive()
