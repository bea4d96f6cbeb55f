"""Must show (issue 16): a reload does not reset health. A server its check marked DOWN is still DOWN in the new
worker right after a structural reload (the reload helper saved `show servers state` to the configuration's
server-state-file, which the master loads into the new worker): requests go to the healthy instance only, until
the server's check passes. Without the state file (haproxy_server_state_file ""), the same reload starts it UP.

Every check runs every 10 s here. A new worker's first check of the i-th of n checked servers comes about
10 s * i / n after it starts (HAProxy spreads them), and a server HAProxy starts UP falls at its first failed
check; the reads below come well before, and the new worker's own failed-check counter (chkfail) says no check
has failed in it yet."""

import subprocess
import time
from pathlib import Path

from haproxy_helpers import request, wait_for

BURST = 40
# Reads after the reload must come before the new worker's first check of the failing server (about 6.7 s).
PROMPT = 2.0


def _workers(proxy) -> dict:
    """{pid: reloads survived} of HAProxy's workers, after asserting that no reload failed (show proc)."""
    workers = {}
    for fields in map(str.split, proxy.master("show proc").splitlines()):
        if fields[1:2] == ["master"]:
            assert fields[4].rstrip("]") == "0", f"HAProxy counts a failed reload: {fields}"
        elif fields[1:2] == ["worker"]:
            workers[int(fields[0])] = int(fields[2])
    return workers


def _stat(proxy, worker: int, backend: str) -> dict:
    """The servers of backend in one worker's `show stat` (master CLI, @!<pid>), by server name."""
    lines = proxy.master(f"@!{worker} show stat").splitlines()
    assert lines and lines[0].startswith("# pxname,"), lines[:3]
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
    return {
        row["svname"]: row for row in rows if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")
    }


def _with_one_instance_down(router, backends, **variables):
    """A router whose app web has two instances, node2-web-bad DOWN (its /health answers 503)."""
    proxy = router(confirm_reload=True, haproxy_health_interval="10s", **variables)
    good, bad = backends("web-good", "web-bad")
    bad.health_status = 503
    proxy.put_route("web", {"hosts": ["web.test"], "health": {"path": "/health"}})
    proxy.put_instance("web", "node1", "web-good", good.port)
    proxy.put_instance("web", "node2", "web-bad", bad.port)
    proxy.wait_rendered(lambda text: "server node2-web-bad" in text)
    # The stats page shows node2-web-bad once the reload that added it went through.
    wait_for(
        lambda: proxy.servers("app_web").get("node2-web-bad", {}).get("status") == "DOWN",
        30,
        what="node2-web-bad DOWN",
    )
    assert proxy.servers("app_web")["node1-web-good"]["status"] == "UP"
    return proxy, good, bad


def _structural_reload(proxy, backend) -> tuple:
    """Adds a second app's route (a new backend and frontend line); returns (the new worker, when it was seen)."""
    old = _workers(proxy)
    proxy.put_route("alpha", {"hosts": ["alpha.test"]})
    proxy.put_instance("alpha", "node1", "alpha-1", backend.port)

    def new_worker():
        return [pid for pid, survived in _workers(proxy).items() if survived == 0 and pid not in old]

    (worker,) = wait_for(new_worker, 20, 0.05, what="the structural reload's new worker")
    seen = time.monotonic()
    assert "backend app_alpha" in proxy.live.read_text()
    return worker, seen


def _burst(proxy) -> dict:
    answers = {}
    for _number in range(BURST):
        answer = request(proxy.http_port, "web.test")
        answers[answer] = answers.get(answer, 0) + 1
    return answers


def test_a_down_server_stays_down_across_a_structural_reload_until_its_check_passes(router, backends):
    proxy, good, bad = _with_one_instance_down(router, backends)
    hits_before = bad.hits

    worker, seen = _structural_reload(proxy, good)

    servers = _stat(proxy, worker, "app_web")
    answers = _burst(proxy)
    elapsed = time.monotonic() - seen
    assert elapsed < PROMPT, f"read {elapsed:.1f}s after the reload: a check may have run meanwhile"
    bad_row = servers["node2-web-bad"]
    assert bad_row["status"] == "DOWN", bad_row
    assert bad_row["chkfail"] == "0", f"a check failed in the new worker already: {bad_row}"
    assert servers["node1-web-good"]["status"] == "UP", servers["node1-web-good"]
    assert answers == {(200, "web-good"): BURST}, answers
    assert bad.hits == hits_before
    assert " app_web " in Path(proxy.variables["haproxy_server_state_file"]).read_text()
    # The renderer logs the helper's output, so the warning would be there: its line of success is.
    assert "reload confirmed" in proxy.renderer.log()
    assert "server state not saved" not in proxy.renderer.log()

    bad.health_status = 200
    wait_for(lambda: _stat(proxy, worker, "app_web")["node2-web-bad"]["status"] == "UP", 30, what="node2-web-bad UP")
    wait_for(lambda: request(proxy.http_port, "web.test") == (200, "web-bad"), 10, what="a request to web-bad")


def test_without_the_state_file_the_same_reload_starts_the_down_server_up(router, backends):
    proxy, good, bad = _with_one_instance_down(router, backends, haproxy_server_state_file="")
    hits_before = bad.hits

    worker, seen = _structural_reload(proxy, good)

    servers = _stat(proxy, worker, "app_web")
    answers = _burst(proxy)
    elapsed = time.monotonic() - seen
    assert elapsed < PROMPT, f"read {elapsed:.1f}s after the reload: a check may have run meanwhile"
    assert "server-state-file" not in proxy.live.read_text()
    # "UP 1/3": UP as every server HAProxy starts, down at the first failed check.
    bad_row = servers["node2-web-bad"]
    assert bad_row["status"].startswith("UP") and bad_row["chkfail"] == "0", bad_row
    assert answers.get((200, "web-bad"), 0) > 0 and bad.hits > hits_before, answers


def test_what_consul_says_wins_over_the_saved_state(router, backends):
    """The saved state holds each server's weight, address and port: a reload that changes them (same server name)
    takes the configuration's, not the saved ones."""
    proxy = router(confirm_reload=True)
    first, second, moved = backends("web-1", "web-2", "web-1-moved")
    proxy.put_route("web", {"hosts": ["web.test"], "canary_weight": 20})
    proxy.put_instance("web", "node1", "t1", first.port)
    proxy.put_instance("web", "node2", "t2", second.port, track="canary")
    wait_for(lambda: _weights(proxy) == {"node1-t1": "4", "node2-t2": "1"}, 20, what="weights 4:1")

    proxy.put_route("web", {"hosts": ["web.test"], "canary_weight": 50})
    proxy.put_instance("web", "node1", "t1", moved.port)

    # The reload saved node1-t1 with weight 4 on web-1's port; the new worker must take the configuration's.
    wait_for(
        lambda: _running_ports(proxy) == {"node1-t1": str(moved.port), "node2-t2": str(second.port)},
        20,
        what=f"node1-t1 on port {moved.port}",
        detail=lambda: _running_ports(proxy),
    )
    assert _weights(proxy) == {"node1-t1": "1", "node2-t2": "1"}
    answers = _burst(proxy)
    assert answers == {(200, "web-1-moved"): BURST // 2, (200, "web-2"): BURST // 2}, answers
    assert first.hits == 0
    assert " app_web " in Path(proxy.variables["haproxy_server_state_file"]).read_text()


def _weights(proxy) -> dict:
    return {name: row["weight"] for name, row in proxy.servers("app_web").items()}


def _running_ports(proxy) -> dict:
    """{server: port} of app_web in the newest worker (`show servers state`: the stats page hides addresses)."""
    lines = proxy.master("@1 show servers state app_web").splitlines()
    header = lines[1].lstrip("# ").split()
    rows = [dict(zip(header, line.split(), strict=False)) for line in lines[2:] if line]
    return {row["srv_name"]: row["srv_port"] for row in rows}


def test_a_state_that_cannot_be_saved_does_not_stop_the_reload(router):
    """The helper says so on stderr, removes the previous state (it must not be loaded instead), and reloads."""
    proxy = router()
    state = Path(proxy.variables["haproxy_server_state_file"])
    state.write_text("1\n# a state saved before\n")
    unreadable = proxy.helper_argv(["/bin/sh", "-c", proxy.reload_command()])
    unreadable[unreadable.index("--config") + 1] = str(proxy.workdir / "no-such.cfg")
    unwritable = proxy.helper_argv(["/bin/sh", "-c", proxy.reload_command()])
    unwritable[unwritable.index("--state-file") + 1] = str(proxy.workdir / "no-such-dir" / "server-state")

    for argv, cause, previous in (
        (unreadable, "cannot read", "removed the previous one"),
        (unwritable, "cannot write", "there was no previous one"),
    ):
        ran = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

        assert ran.returncode == 0 and ran.stdout.startswith("reload confirmed:"), ran.stdout + ran.stderr
        message = ran.stderr.strip()
        assert "\n" not in message and message.startswith("server state not saved, reloading without it"), message
        assert cause in message and previous in message, message
        assert not state.exists()
