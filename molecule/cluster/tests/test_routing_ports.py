"""A route can never freeze routing by asking for a port the router already uses.

(1) A route whose service_port is a port the platform uses on the router (the
renderer's status port 8559) is skipped by the renderer (it lies outside
haproxy_service_port_range), logged naming the key and the field, and never
reaches the live /etc/haproxy/dockyard.cfg; the other routes still answer.
(2) A route on a port of the service range that something else holds on one
router: `haproxy -c` passes and `systemctl reload` exits 0, but HAProxy's master
cannot bind it; the role's reload helper reports it, so that router's renderer
puts the previous file back byte for byte and its /v1/health answers 503 naming
the failure, while the existing routes still answer. Afterwards (route removed,
listener stopped) the renderer is healthy again.

Runs after test_routing.py (file order), whose app `web` it reuses: three tasks,
Host header web.dockyard.test and service port 10080.
"""

import json
import shlex
import time

import pytest
from support.waiting import wait_for
from test_routing import (
    APP,
    CONSUL_CURL,
    NODES,
    SERVICE_PORT,
    TOKENS,
    app_servers,
    get,
    node_address,
    node_exec,
    put_key,
)

testinfra_hosts = ["manager1"]

LIVE = "/etc/haproxy/dockyard.cfg"
STATUS = "http://127.0.0.1:8559"
CLASH_APP = "clash"
CLASH_PORT = 8559  # the renderer's own status port
HELD_APP = "held"
HELD_ROUTER = "agent1"
HELD_PORT = 10555  # in the service range (10000-19999), used by no route


def delete_key(host, key):
    token = json.loads((TOKENS / "deployer.json").read_text())["SecretID"]
    host.check_output(
        f"{CONSUL_CURL} --request DELETE --header {shlex.quote('X-Consul-Token: ' + token)} "
        f"https://127.0.0.1:8501/v1/kv/dockyard/routes/{key}"
    )


def health(name):
    """(HTTP status, body) of a router's renderer /v1/health, asked on the router itself."""
    answer = node_exec(name, f"curl --silent --max-time 5 --write-out '\\n%{{http_code}}' {STATUS}/v1/health").stdout
    body, _newline, code = answer.rpartition("\n")
    return int(code or 0), body


def renderer_status(name):
    return json.loads(node_exec(name, f"curl --silent --fail --max-time 5 {STATUS}/v1/status").stdout)


def live_file(name):
    return node_exec(name, f"cat {LIVE}").stdout


def renderer_log_since(name, since):
    return node_exec(name, f"journalctl --unit dockyard-renderer --no-pager --output cat --since @{since:.0f}").stdout


def show_proc(name):
    script = (
        "import socket; s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect('/run/haproxy-master.sock'); "
        "s.sendall(b'show proc\\n'); s.shutdown(socket.SHUT_WR); print(s.makefile().read())"
    )
    return node_exec(name, f"python3 -c {shlex.quote(script)}").stdout


@pytest.fixture(scope="module")
def routers():
    """Every router's address, once the app of test_routing.py is routed on each (three servers)."""
    addresses = {name: node_address(name) for name in NODES}
    for name, address in addresses.items():
        wait_for(lambda a=address: len(app_servers(a)) == 3, 120, interval=1, what=f"three servers of {APP} on {name}")
        wait_for(lambda n=name: health(n)[0] == 200, 30, interval=0.5, what=f"the renderer healthy on {name}")
    return addresses


def assert_web_answers(address, name):
    status, body = get(address)
    assert status == 200, f"{name} by Host header: {status} {body}"
    status, body = get(address, port=SERVICE_PORT, host_header="anything")
    assert status == 200, f"{name} by service port: {status} {body}"


def test_a_route_on_a_port_the_router_uses_is_skipped_and_never_live(host, routers):
    since = time.time() - 1
    put_key(host, CLASH_APP, json.dumps({"service_port": CLASH_PORT}))
    try:
        for name in routers:
            # The renderer logs the skip when it renders the key (skipped data is logged once, when it appears).
            wait_for(
                lambda n=name: any(
                    f"route {CLASH_APP}: service_port" in line and str(CLASH_PORT) in line
                    for line in renderer_log_since(n, since).splitlines()
                ),
                20,
                interval=0.5,
                what=f"the renderer on {name} logging the skipped route {CLASH_APP} (service_port {CLASH_PORT})",
            )
        for name, address in routers.items():
            live = live_file(name)
            assert f":{CLASH_PORT}\n" not in live and f"port_{CLASH_PORT}" not in live, f"{name} binds {CLASH_PORT}"
            code, body = health(name)
            assert code == 200, f"{name}: a skipped route is no renderer failure: {code} {body}"
            skipped = renderer_status(name)["templates"][0]["skipped"]
            assert any(f"route {CLASH_APP}: service_port" in item for item in skipped), skipped
            assert_web_answers(address, name)
    finally:
        delete_key(host, CLASH_APP)


def test_a_reload_that_cannot_bind_restores_the_file_and_turns_health_to_503(host, routers):
    name = HELD_ROUTER
    address = routers[name]
    previous = live_file(name)
    failures_before = renderer_status(name)["templates"][0]["command_failures"]
    since = time.time() - 1
    # A listener on every address of the router, as HAProxy's bind 0.0.0.0:<port> would be.
    node_exec(
        name,
        f"systemd-run --unit dockyard-test-held --collect python3 -m http.server {HELD_PORT} --bind 0.0.0.0",
    )
    try:
        listener = f"curl --silent --output /dev/null --max-time 1 http://127.0.0.1:{HELD_PORT}/"
        wait_for(
            lambda: node_exec(name, listener, check=False).returncode == 0,
            10,
            what=f"the listener on {name}:{HELD_PORT}",
        )
        put_key(host, HELD_APP, json.dumps({"hosts": ["held.dockyard.test"], "service_port": HELD_PORT}))
        wait_for(lambda: health(name)[0] == 503, 30, interval=0.5, what=f"the renderer on {name} answering 503")

        code, body = health(name)
        assert code == 503 and "haproxy" in body, body
        template = renderer_status(name)["templates"][0]
        assert template["command_failures"] > failures_before
        assert template["last_error"].startswith("command failed, previous file restored: exit 1: reload failed:"), (
            template["last_error"]
        )
        assert "failed reload(s)" in template["last_error"] and "not live" in template["last_error"]
        assert live_file(name) == previous, f"{name}'s live file changed"
        journal = node_exec(name, f"journalctl --unit haproxy --no-pager --output cat --since @{since:.0f}").stdout
        assert "cannot bind socket" in journal and str(HELD_PORT) in journal, journal[-2000:]
        # The renderer reloaded the previous file again (confirmed): HAProxy's failed counter is back at 0.
        assert "[failed: 0]" in show_proc(name), show_proc(name)
        assert_web_answers(address, name)
        # The route itself is fine where its port is free: the other routers serve it.
        for other in routers:
            if other != name:
                wait_for(
                    lambda o=other: f"port_{HELD_PORT}" in live_file(o), 20, interval=0.5, what=f"{HELD_APP} on {other}"
                )
                assert health(other)[0] == 200
    finally:
        delete_key(host, HELD_APP)
        node_exec(name, "systemctl stop dockyard-test-held", check=False)
    wait_for(lambda: health(name)[0] == 200, 30, interval=0.5, what=f"the renderer on {name} healthy again")
    assert renderer_status(name)["templates"][0]["last_error"] is None
    assert f"port_{HELD_PORT}" not in live_file(name)
    for other, other_address in routers.items():
        assert_web_answers(other_address, other)
