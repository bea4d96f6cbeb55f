"""Routing end to end: registrator → Consul → renderer → HAProxy on every node.

The app is started with plain `docker service create` and the Dockyard labels,
its route key written by the test, as an operator would before the app module
exists. Requests come from the controller to each lab host's address; the stats
CSV on each router's management port shows which servers a router has.
Tests run in file order and build on each other (app → route → failures).
"""

import concurrent.futures
import csv
import http.client
import io
import json
import shlex
import threading
import time
import urllib.request

import pytest
from busybox_image import busybox_image
from cluster import CONSUL_CURL, NODES, TOKENS, node_address, node_exec
from support.waiting import wait_for

testinfra_hosts = ["manager1"]

IMAGE = "lab/routing-app:1"
APP = "web"
VHOST = "web.dockyard.test"
SERVICE_PORT = 10080
MANAGEMENT_PORT = 8404
SESSION_TTL = 20  # registrator_session_ttl's default, in seconds


def put_key(host, key, value):
    token = json.loads((TOKENS / "deployer.json").read_text())["SecretID"]
    host.check_output(
        f"{CONSUL_CURL} --request PUT --header {shlex.quote('X-Consul-Token: ' + token)} "
        f"--data-binary {shlex.quote(value)} https://127.0.0.1:8501/v1/kv/dockyard/routes/{key}"
    )


def servers(address):
    """{backend: {server name: status}} from a router's stats CSV."""
    with urllib.request.urlopen(f"http://{address}:{MANAGEMENT_PORT}/stats;csv", timeout=2) as answer:
        text = answer.read().decode().lstrip("# ")
    table = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row["svname"] == "BACKEND":
            table.setdefault(row["pxname"], {})
        elif row["svname"] != "FRONTEND":
            table.setdefault(row["pxname"], {})[row["svname"]] = row["status"]
    return table


def app_servers(address):
    return next((names for backend, names in servers(address).items() if APP in backend), {})


def get(address, port=80, host_header=VHOST, path="/"):
    connection = http.client.HTTPConnection(address, port, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host_header, "Connection": "close"})
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()


def local_tasks(name):
    """Task ids of the app's containers running on one node."""
    listed = node_exec(
        name, f"docker ps --filter label=org.dockyard.app={APP} --format '{{{{.Label \"com.docker.swarm.task.id\"}}}}'"
    ).stdout
    return listed.split()


def build_app_image(name):
    """An HTTP app from the host's static busybox; it answers with its container's hostname."""
    command = ["/bin/sh", "-c", "hostname > /www/index.html; echo ok > /www/health; exec httpd -f -p 8080 -h /www"]
    node_exec(name, busybox_image(IMAGE, command))


@pytest.fixture(scope="module")
def addresses():
    return {name: node_address(name) for name in NODES}


@pytest.fixture(scope="module")
def app(host, addresses):
    """Three tasks of the app, one per node, published in host mode, and its route key."""
    for name in NODES:
        build_app_image(name)
    if host.run(f"docker service inspect {APP}").rc != 0:
        host.check_output(
            f"docker service create --detach --name {APP} --replicas 3 --replicas-max-per-node 1 "
            "--container-label org.dockyard.app=web --container-label org.dockyard.version=1 "
            "--container-label org.dockyard.track=stable --container-label org.dockyard.port=8080 "
            f"--publish mode=host,target=8080 {IMAGE}"
        )
    put_key(
        host,
        APP,
        json.dumps({"hosts": [VHOST], "service_port": SERVICE_PORT, "health": {"path": "/health", "interval": "1s"}}),
    )
    for address in addresses.values():
        wait_for(lambda a=address: len(app_servers(a)) == 3, 120, 1, what=f"three servers of {APP} on {address}")
    return addresses


def test_app_answers_on_every_node_by_host_header_and_service_port(app):
    answered_by = set()
    for name, address in app.items():
        for _round in range(6):
            status, body = get(address)
            assert status == 200, f"{name} by Host header: {status} {body}"
            answered_by.add(body.strip())
            status, body = get(address, port=SERVICE_PORT, host_header="anything")
            assert status == 200, f"{name} by service port: {status} {body}"
    assert len(answered_by) == 3, f"round robin over every node's task, got {answered_by}"


def test_unknown_host_header_gets_the_no_route_404(app):
    # roles/haproxy/templates/haproxy.cfg.j2: default_backend dockyard_no_route answers 404.
    status, body = get(app["manager1"], host_header="nobody.dockyard.test")
    assert status == 404 and "no route for this host" in body, (status, body)


def test_stats_and_prometheus_exporter_answer_on_the_management_port(app):
    with urllib.request.urlopen(f"http://{app['agent2']}:{MANAGEMENT_PORT}/metrics", timeout=5) as answer:
        metrics = answer.read().decode()
    assert 'haproxy_backend_active_servers{proxy="app_web"} 3' in metrics


def test_invalid_route_keys_are_skipped_and_the_rest_still_renders(host, app):
    put_key(host, "broken", "{not json")
    put_key(host, "impossible", json.dumps({"hosts": ["impossible.dockyard.test"], "service_port": 70000}))
    put_key(host, "api", json.dumps({"hosts": ["api.dockyard.test"]}))
    for address in app.values():
        wait_for(lambda a=address: any("api" in backend for backend in servers(a)), 10, 0.1, what="the api backend")
        backends = servers(address)
        assert not [backend for backend in backends if "broken" in backend or "impossible" in backend]
    log = host.check_output("journalctl --unit dockyard-renderer --no-pager --output cat")
    assert "broken" in log and "impossible" in log and "service_port" in log
    assert host.run("haproxy -c -q -f /etc/haproxy/dockyard.cfg").rc == 0
    assert get(app["agent1"])[0] == 200
    assert get(app["agent1"], host_header="api.dockyard.test")[0] == 503


def test_killed_task_leaves_every_router_within_3_seconds(app):
    task = local_tasks("agent1")[0]
    node_exec("agent1", f"docker kill $(docker ps --quiet --filter label=com.docker.swarm.task.id={task})")
    killed = time.monotonic()
    for name, address in app.items():
        wait_for(lambda a=address: not [s for s in app_servers(a) if task in s], 5, 0.1, what=f"{task} gone on {name}")
    elapsed = time.monotonic() - killed
    assert elapsed <= 3, f"the killed task left the last router after {elapsed:.1f} s"
    # Swarm replaces the task; the routers pick the new one up.
    for address in app.values():
        wait_for(lambda a=address: len(app_servers(a)) == 3, 60, 0.5, what="three servers again")


def agent2_servers(address):
    return [name for name in app_servers(address) if "agent2" in name]


def test_stopped_registrator_takes_its_instances_away_at_once(app):
    assert agent2_servers(app["manager1"])
    node_exec("agent2", "systemctl stop dockyard-registrator")
    stopped = time.monotonic()
    for address in app.values():
        wait_for(lambda a=address: not agent2_servers(a), 5, 0.1, what="agent2's instances gone")
    assert time.monotonic() - stopped <= 3
    node_exec("agent2", "systemctl start dockyard-registrator")
    for address in app.values():
        wait_for(lambda a=address: agent2_servers(a), 15, 0.1, what="agent2's instances back")


def test_hung_registrator_instances_expire_within_the_session_ttl(app):
    """A frozen daemon renews nothing: Consul's TTL, not the daemon, removes its keys."""
    node_exec("agent2", "systemctl kill --signal=SIGSTOP dockyard-registrator")
    frozen = time.monotonic()
    try:
        for address in app.values():
            wait_for(lambda a=address: not agent2_servers(a), SESSION_TTL + 5, 0.5, what="expiry")
        elapsed = time.monotonic() - frozen
        assert elapsed <= SESSION_TTL + 3, f"agent2's instances outlived the session TTL: {elapsed:.1f} s"
    finally:
        node_exec("agent2", "systemctl kill --signal=SIGCONT dockyard-registrator")
    # Thawed, it notices its session is gone, makes a new one and registers again.
    for address in app.values():
        wait_for(lambda a=address: agent2_servers(a), 30, 0.5, what="agent2's instances back after thaw")


def master_reloads(name):
    """The HAProxy master's reload count, from `show proc` on its CLI.

    Not from the journal: with every request logged (tens of thousands of
    lines in this test) journald lags behind, and its rate limit may drop lines.
    """
    script = (
        "import socket; s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect('/run/haproxy-master.sock'); "
        "s.sendall(b'show proc\\n'); s.shutdown(socket.SHUT_WR); print(s.makefile().read())"
    )
    table = node_exec(name, f"python3 -c {shlex.quote(script)}").stdout
    master = next(fields for fields in map(str.split, table.splitlines()) if fields[1:2] == ["master"])
    return int(master[2])


def test_200_reloads_at_two_per_second_fail_no_request(app):
    address = app["manager1"]
    before = master_reloads("manager1")
    done = threading.Event()
    outcomes = {"ok": 0, "failed": []}
    lock = threading.Lock()

    def load():
        while not done.is_set():
            try:
                status, _body = get(address)
                result = None if status == 200 else f"HTTP {status}"
            except OSError as error:
                result = f"{type(error).__name__}: {error}"
            with lock:
                if result is None:
                    outcomes["ok"] += 1
                else:
                    outcomes["failed"].append(result)

    def reload_loop():
        start = time.monotonic()
        for number in range(200):
            time.sleep(max(0.0, start + number * 0.5 - time.monotonic()))
            node_exec("manager1", "systemctl reload haproxy")

    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        clients = [pool.submit(load) for _client in range(4)]
        try:
            pool.submit(reload_loop).result()
        finally:
            done.set()
        for client in clients:
            client.result()
    assert outcomes["failed"] == [], f"{len(outcomes['failed'])} failed of {outcomes['ok']}: {outcomes['failed'][:5]}"
    assert outcomes["ok"] > 1000
    # Every `systemctl reload` succeeded (node_exec checks). A SIGUSR2 that reaches the master while it is still
    # re-executing for the previous one is merged into it, so a few reloads may not count on their own.
    reloads = master_reloads("manager1") - before
    assert reloads >= 195, f"the HAProxy master reloaded {reloads} times for 200 reloads"
