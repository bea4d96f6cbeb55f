"""Must show: the role's reload helper (roles/haproxy/files/haproxy_reload.py) confirms a reload on the real
HAProxy master's CLI. A good reload exits 0; a reload whose new file cannot bind (a port a test socket holds,
which `haproxy -c` does not notice and after which the reload command still exits 0) exits non-zero with a
message naming the failure while the old worker keeps serving; through the renderer, that failure restores
the previous file byte for byte and turns /v1/health to 503 until the route goes away."""

import contextlib
import json
import random
import socket
import subprocess
import urllib.error
import urllib.request

import pytest
from haproxy_helpers import RELOAD_HELPER, request, wait_for

# The role's default haproxy_service_port_range: routes' service ports must lie in it.
SERVICE_PORTS = range(10000, 20000)


def _show_proc(proxy) -> dict:
    """{'master': (pid, reloads, failed), 'workers': {pid: reloads survived}} from the master CLI."""
    master, workers = None, {}
    for fields in map(str.split, proxy.master("show proc").splitlines()):
        if fields[1:2] == ["master"]:
            master = (int(fields[0]), int(fields[2]), int(fields[4].rstrip("]")))
        elif fields[1:2] == ["worker"]:
            workers[int(fields[0])] = int(fields[2])
    assert master is not None, "no master line in show proc"
    return {"master": master, "workers": workers}


@contextlib.contextmanager
def _held_port():
    """A listening socket on a loopback port of the service range: HAProxy cannot bind that port."""
    ports = list(SERVICE_PORTS)
    random.shuffle(ports)
    for port in ports[:200]:
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen()
        try:
            yield port
        finally:
            sock.close()
        return
    raise AssertionError("no free port in the service range")


def _free_service_port() -> int:
    with _held_port() as port:
        return port


def _helper(proxy, *command) -> subprocess.CompletedProcess:
    argv = proxy.helper_argv(list(command) or ["/bin/sh", "-c", proxy.reload_command()])
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def _health(proxy) -> tuple:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{proxy.status_port}/v1/health", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _frontend(port: int) -> str:
    return (
        f"\nfrontend held_{port}\n    bind 127.0.0.1:{port}\n    mode http\n"
        "    http-request return status 200 content-type text/plain string held\n"
    )


def test_a_good_reload_is_confirmed(router):
    proxy = router()
    before = _show_proc(proxy)

    ran = _helper(proxy)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    after = _show_proc(proxy)
    assert after["master"][1] == before["master"][1] + 1 and after["master"][2] == 0, after
    new = [pid for pid, survived in after["workers"].items() if survived == 0]
    assert new and not set(new) & set(before["workers"]), (before, after)
    assert ran.stdout.startswith("reload confirmed:") and str(new[0]) in ran.stdout, ran.stdout
    assert ran.stderr == ""


def test_a_reload_that_cannot_bind_fails_and_the_old_worker_still_serves(router):
    proxy = router()
    good = proxy.live.read_bytes()
    before = _show_proc(proxy)
    with _held_port() as port:
        proxy.live.write_text(good.decode() + _frontend(port))
        checked = subprocess.run(
            ["haproxy", "-c", "-q", "-f", str(proxy.live)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, "haproxy -c does not bind, so it passes this file"

        ran = _helper(proxy)

        assert ran.returncode == 1, ran.stdout + ran.stderr
        message = ran.stderr.strip()
        assert "\n" not in message and ran.stdout == ""
        assert message.startswith("reload failed: HAProxy's master"), message
        assert "1 failed reload(s)" in message and "new configuration is not live" in message, message
        after = _show_proc(proxy)
        assert after["master"][1] == before["master"][1] + 1 and after["master"][2] == 1, after
        # The previous worker survived one more reload and is still the only one; it still serves.
        assert after["workers"] == {pid: survived + 1 for pid, survived in before["workers"].items()}, (before, after)
        assert proxy.management_up()
        with urllib.request.urlopen(f"http://127.0.0.1:{proxy.management_port}/stats;csv", timeout=5) as answer:
            assert answer.status == 200

    # With the previous file back, the next reload is confirmed again (HAProxy's failed counter falls to 0).
    proxy.live.write_bytes(good)
    ran = _helper(proxy)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert _show_proc(proxy)["master"][2] == 0


def test_a_reload_command_that_fails_or_a_master_that_does_not_reload_is_reported(router):
    proxy = router()
    ran = _helper(proxy, "/bin/sh", "-c", "echo 'Job for haproxy.service failed.' >&2; exit 3")
    assert ran.returncode == 1
    assert ran.stderr.strip() == (
        "reload command /bin/sh -c 'echo '\"'\"'Job for haproxy.service failed.'\"'\"' >&2; exit 3' exited 3:"
        " Job for haproxy.service failed."
    )
    # A command that exits 0 without reloading (the signal went nowhere): the helper waits, bounded.
    argv = proxy.helper_argv(["/bin/true"], timeout=1.5)
    ran = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert ran.returncode == 1
    assert ran.stderr.startswith("reload not seen: HAProxy's master"), ran.stderr
    missing = proxy.helper_argv(["/bin/true"], timeout=1)
    missing[missing.index("--socket") + 1] = str(proxy.workdir / "no-such.sock")
    ran = subprocess.run(missing, capture_output=True, text=True, timeout=30, check=False)
    assert ran.returncode == 1
    assert "master CLI" in ran.stderr and "did not answer show proc" in ran.stderr, ran.stderr


@pytest.mark.slow
def test_through_the_renderer_a_route_on_a_held_port_restores_the_file_and_reports_503(router, backends):
    proxy = router(confirm_reload=True)
    (web,) = backends("web-1")
    web_port = _free_service_port()
    proxy.put_route("web", {"hosts": ["web.test"], "service_port": web_port, "health": {"path": "/health"}})
    proxy.put_instance("web", "node1", "t1", web.port)
    proxy.wait_rendered(lambda text: "server node1-t1" in text)
    wait_for(lambda: request(proxy.http_port, "web.test")[0] == 200, 10, what="web routed")
    wait_for(lambda: _health(proxy)[0] == 200, 10, what="the renderer healthy")
    previous = proxy.live.read_bytes()
    failures_before = proxy.status()["command_failures"]

    with _held_port() as port:
        proxy.put_route("blocked", {"hosts": ["blocked.test"], "service_port": port})
        proxy.put_instance("blocked", "node1", "t1", web.port)
        wait_for(lambda: proxy.status()["command_failures"] > failures_before, 20, what="the failed reload")

        status = proxy.status()
        assert status["last_error"].startswith("command failed, previous file restored: exit 1: reload failed:"), status
        code, reason = _health(proxy)
        assert code == 503 and "haproxy" in reason, (code, reason)
        assert proxy.live.read_bytes() == previous
        assert request(proxy.http_port, "web.test") == (200, "web-1")
        assert request(web_port, "anything.test") == (200, "web-1")
        # The renderer reran the helper on the restored file: that reload was confirmed.
        assert _show_proc(proxy)["master"][2] == 0
        assert "rerun=ok" in proxy.renderer.log()

    proxy.consul.delete_tree(f"{proxy.prefix}routes/blocked")
    wait_for(lambda: _health(proxy)[0] == 200, 20, what="health 200 after the route went away")
    assert proxy.status()["last_error"] is None
    assert proxy.live.read_bytes() == previous
    assert request(web_port, "anything.test") == (200, "web-1")


def test_show_proc_of_the_real_master_parses(router):
    """The helper's parser against what this HAProxy prints (not a copy of it)."""
    proxy = router()
    ran = subprocess.run(
        [
            "python3",
            "-I",
            "-c",
            "import json, sys; sys.path.insert(0, sys.argv[1]); import haproxy_reload as h; "
            "p = h.parse_show_proc(sys.stdin.read()); print(json.dumps([p.master_pid, p.reloads, p.failed]))",
            str(RELOAD_HELPER.parent),
        ],
        input=proxy.master("show proc"),
        capture_output=True,
        text=True,
        check=True,
    )
    master = _show_proc(proxy)["master"]
    assert json.loads(ran.stdout) == list(master)
