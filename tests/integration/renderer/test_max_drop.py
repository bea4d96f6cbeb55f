"""Must show: max_drop holds against one-key-at-a-time deletes, across a restart, and only root lets a drop through.

A real Consul agent and the real daemon: keys are deleted one by one, 150 ms
apart, while the daemon renders between them (wait.min is 100 ms); the
rendered file must keep at least half of the entries, the refusal must show
in /v1/status and /v1/health, and the accept-drop override is taken only on
the control socket, with the very curl command the haproxy role documents.
"""

import json
import subprocess
import time
import urllib.error
import urllib.request

from renderer_helpers import consul_settings, wait_for

TEMPLATE = "{% for b in ls(p) %}server {{ b.key }} {{ b.value }}\n{% endfor %}"
ENTRIES = 10


def _start(renderer, consul_agent, tmp_path, prefix):
    for number in range(ENTRIES):
        consul_agent.put(f"{prefix}b{number}", f"10.0.0.{number}:80")
    config = {
        "consul": consul_settings(consul_agent),
        "wait": {"min": 0.1, "max": 1},
        "state_dir": str(tmp_path / "state"),
        "templates": [
            {
                "name": "backends",
                "contents": "{% set p = '" + prefix + "' %}" + TEMPLATE,
                "destination": str(tmp_path / "out" / "backends.conf"),
                "max_drop": "50%",
            }
        ],
    }
    daemon = renderer(config)
    return daemon, config


def _entries(live) -> int:
    return len(live.read_text().splitlines())


def _delete_one_by_one(consul_agent, prefix, numbers):
    for number in numbers:
        consul_agent.request("DELETE", f"/v1/kv/{prefix}b{number}")
        time.sleep(0.15)


def _health(daemon) -> tuple:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{daemon.status_port}/v1/health", timeout=5) as answer:
            return answer.status, json.loads(answer.read())["status"]
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())["status"]


def _last_error(daemon) -> str:
    """The template's last error; "" while the daemon's status endpoint is not up yet."""
    try:
        return daemon.template("backends")["last_error"] or ""
    except OSError:
        return ""


def _refused_down_to_zero(daemon) -> bool:
    error = _last_error(daemon)
    return "render refused" in error and "to 0 entries" in error


def _assert_refusal_reported(daemon, live):
    assert _entries(live) >= ENTRIES // 2
    template = daemon.template("backends")
    assert template["refusals"] >= 1
    assert f"fell from {ENTRIES} to 0 entries" in template["last_error"]
    assert _health(daemon) == (503, "templates in error: backends")
    assert daemon.alive()


def test_one_key_at_a_time_deletes_leave_at_least_half_the_entries_live(consul_agent, renderer, tmp_path):
    prefix = "maxdrop/steps/"
    consul_agent.delete_tree(prefix)
    crashed = tmp_path / "out" / ".backends.conf.k3x9_q2z.candidate"  # as a daemon killed mid-render leaves it
    crashed.parent.mkdir()
    crashed.write_text("half a render\n")
    daemon, _config = _start(renderer, consul_agent, tmp_path, prefix)
    daemon.wait_ready()
    live = tmp_path / "out" / "backends.conf"
    assert _entries(live) == ENTRIES
    assert sorted(path.name for path in live.parent.iterdir()) == ["backends.conf"]
    assert daemon.log_lines("stale candidate removed", crashed.name)

    _delete_one_by_one(consul_agent, prefix, reversed(range(ENTRIES)))
    wait_for(lambda: _refused_down_to_zero(daemon), 10, 0.05, "the refusal of the empty render")
    _assert_refusal_reported(daemon, live)
    assert (
        daemon.template("backends")["render_count"] > 1
    )  # the first deletes did render: the guard is not all-or-nothing


def test_the_baseline_outlives_a_restart_between_deletes(consul_agent, renderer, tmp_path):
    prefix = "maxdrop/restart/"
    consul_agent.delete_tree(prefix)
    daemon, config = _start(renderer, consul_agent, tmp_path, prefix)
    daemon.wait_ready()
    live = tmp_path / "out" / "backends.conf"
    _delete_one_by_one(consul_agent, prefix, (9, 8, 7))
    wait_for(lambda: _entries(live) == 7, 10, 0.05, "the render of 7 entries")
    assert daemon.stop() == 0

    _delete_one_by_one(consul_agent, prefix, (6, 5, 4))  # while the daemon is down: 4 of the 10 left
    restarted = renderer({key: value for key, value in config.items() if key != "status"})  # on a new status port
    wait_for(lambda: "render refused" in _last_error(restarted), 10, 0.05, "the restarted daemon's first refusal")
    assert "fell from 10 to 4 entries" in restarted.template("backends")["last_error"]
    assert _entries(live) == 7
    _delete_one_by_one(consul_agent, prefix, (3, 2, 1, 0))
    wait_for(lambda: _refused_down_to_zero(restarted), 10, 0.05, "the refusal of the empty render")
    _assert_refusal_reported(restarted, live)
    assert _entries(live) == 7


def _curl_accept_drop(*target) -> tuple:
    """(HTTP status, body) of the accept-drop POST, sent with curl as an operator would."""
    done = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST", *target],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    body, _newline, code = done.stdout.rpartition("\n")
    return int(code), body


def test_only_the_control_socket_lets_a_refused_drop_through(consul_agent, renderer, tmp_path):
    prefix = "maxdrop/override/"
    consul_agent.delete_tree(prefix)
    daemon, _config = _start(renderer, consul_agent, tmp_path, prefix)
    daemon.wait_ready()
    live = tmp_path / "out" / "backends.conf"
    before = live.read_bytes()
    consul_agent.delete_tree(prefix)
    wait_for(lambda: _refused_down_to_zero(daemon), 10, 0.05, "the refusal")

    code, body = _curl_accept_drop(f"http://127.0.0.1:{daemon.status_port}/v1/accept-drop/backends")
    assert code == 403 and "control socket" in body
    time.sleep(0.5)  # two quiescence waits: an accepted override would have rendered by now
    assert live.read_bytes() == before
    assert daemon.template("backends")["refusals"] >= 1

    socket = tmp_path / "state" / "control.sock"
    assert oct(socket.stat().st_mode & 0o777) == "0o600"
    code, body = _curl_accept_drop("--unix-socket", str(socket), "http://localhost/v1/accept-drop/backends")
    assert (code, json.loads(body)) == (200, {"accepted": True})
    wait_for(lambda: live.read_text() == "", 10, 0.05, "the accepted render")
    wait_for(lambda: daemon.template("backends")["last_error"] is None, 10, 0.05, "the template out of error")
    assert _health(daemon)[0] == 200
