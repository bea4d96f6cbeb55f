"""Restarting a node's registrator while clients load an app through every router: `systemctl restart`, as the
registrator role does when the daemon's code or configuration changed and as rolling_restart.yml does. No request
fails, and the node's instances never leave Consul: a loop on the node reads them every 50 ms through the restart.
The new run holds the session the old one handed over. A stop that is not a restart still withdraws them at once,
and a start brings them back.
"""

import json
import shlex
import subprocess
import time

import pytest
from cluster import NODES, TLS, consul_api, consul_token, container, lab_host, management_token, node_address, node_exec
from deploying import containers, running_app
from load import Load
from support.waiting import wait_for

APP = "handover"
SERVICE_PORT = 10098
SERVICE = "dockyard-registrator"
WATCH_SECONDS = 20

# Reads the node's instance keys of the app every 50 ms for a while; prints how many there were each time.
WATCH = f"""
read -r token
end=$((SECONDS + {WATCH_SECONDS}))
while [ "$SECONDS" -lt "$end" ]; do
  curl --silent --max-time 2 {TLS} -H "X-Consul-Token: $token" \\
    "https://127.0.0.1:8501/v1/kv/dockyard/instances/$1/{APP}/?keys" | grep -o '"dockyard/instances/' | wc -l
  sleep 0.05
done
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("handover"), APP, SERVICE_PORT, "h1") as workdir:
        yield workdir


def instance_keys(node: str) -> list:
    status, body = consul_api(
        lab_host("manager1"), f"kv/dockyard/instances/{node}/{APP}/?keys", consul_token("deployer")
    )
    return json.loads(body) if status == 200 else []


def session_of(node: str) -> list:
    status, body = consul_api(lab_host("manager1"), "session/list", management_token())
    assert status == 200, body
    return [entry["ID"] for entry in json.loads(body) if entry["Name"] == f"dockyard-registrator {node}"]


def main_pid(node: str) -> str:
    return node_exec(node, f"systemctl show --property=MainPID --value {SERVICE}").stdout.strip()


def test_a_restart_under_load_keeps_every_instance_of_the_node_and_fails_no_request(app):
    node = next(name for name, found in containers(APP).items() if found and name != "manager1")
    expected = len(containers(APP)[node])
    assert len(instance_keys(node)) == expected
    session, pid = session_of(node), main_pid(node)
    since = node_exec(node, "date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    watch = subprocess.Popen(
        ["docker", "exec", "--interactive", container(node), "bash", "-c", WATCH, "watch", node],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    watch.stdin.write(consul_token("deployer") + "\n")
    watch.stdin.flush()  # communicate() closes it
    load = Load([node_address(name) for name in NODES], SERVICE_PORT).start()
    time.sleep(3)
    node_exec(node, f"systemctl restart {SERVICE}")
    seen = [int(line) for line in watch.communicate(timeout=WATCH_SECONDS + 30)[0].split()]
    result = load.stop()
    log = node_exec(node, f"journalctl --unit {SERVICE} --since {shlex.quote(since)} --no-pager --output cat").stdout
    print(f"registrator restart on {node}: {len(seen)} reads of its keys, fewest {min(seen)}; {result.summary()}")
    assert main_pid(node) != pid, "the registrator did not restart"
    assert len(seen) >= 40, seen
    assert min(seen) == expected, f"an instance of {node} left Consul during the restart: {seen}"
    assert not result.failures, result.summary()
    assert session_of(node) == session, "the new run holds a session of its own, not the one handed over"
    assert "session handed over to the next run" in log and "session taken over from the previous run" in log, log


def test_a_stop_still_withdraws_the_nodes_instances_at_once_and_a_start_brings_them_back(app):
    node = next(name for name, found in containers(APP).items() if found and name != "manager1")
    expected = len(instance_keys(node))
    try:
        node_exec(node, f"systemctl stop {SERVICE}")
        assert instance_keys(node) == []
        assert session_of(node) == []
    finally:
        node_exec(node, f"systemctl start {SERVICE}")
    wait_for(lambda: len(instance_keys(node)) == expected, 30, 0.5, what=f"{node}'s instances back")
