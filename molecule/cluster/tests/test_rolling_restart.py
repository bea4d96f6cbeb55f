"""playbooks/rolling_restart.yml on the running cluster.

Consul, then ZooKeeper, restarted one host at a time while two writers put sequential numbers into Consul KV and
ZooKeeper (a write that errors is tried again; a write that was acknowledged must be there at the end) and an app
deploys through deploy_app.yml: no acknowledged write is lost, the deployment succeeds, every host of the
component restarted, and the run's log restarts the leader found before the run last. HAProxy, the renderer and
the registrator roll every router or scheduler node once, in the logged plan's order. Refused, with nothing
restarted: an unknown component, and a roll while a ZooKeeper member is down.
"""

import base64
import json
import os
import re
import shlex
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cluster import COORDINATION, NODES, SECRETS, TLS, consul_api, consul_token, container, management_token, node_exec
from deploying import ROOT, app_options, build_image, deploy
from support.waiting import wait_for

testinfra_hosts = ["manager1"]

PLAYBOOK = ROOT / "playbooks" / "rolling_restart.yml"
APP = "restarts"
SERVICE_PORT = 10095
CONSUL_PREFIX = "config/rolling-restart-test"
ZOOKEEPER_PATH = "/dockyard/rolling-restart-test"
ZOOKEEPER_SERVERS = ",".join(f"{member}:2181" for member in COORDINATION)
# The restarts in the run's log, in the order they ran: the roles' one-member restarts and the playbook's own
# restart of a Consul client agent, each a task named after its host whose result is a change.
RESTARTED = re.compile(
    r"^TASK \[(?:[\w.]+ : )?Restart the (?:member|server|Consul client agent) (\S+)\] \**\nchanged: ", re.MULTILINE
)

CONSUL_WRITER = f"""
read -r token
n=1
while [ ! -e /tmp/rolling-restart-stop ]; do
  answer=$(curl --silent --show-error --max-time 5 {TLS} -X PUT -H "X-Consul-Token: $token" \\
    --data-binary "$n" "https://127.0.0.1:8501/v1/kv/{CONSUL_PREFIX}/$n" 2>&1)
  if [ "$answer" = true ]; then echo "ack $n"; n=$((n + 1)); else echo "retry $n $answer"; sleep 0.3; fi
done
"""

ZOOKEEPER_WRITER = f"""
import os, sys, time
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NodeExistsError
from kazoo.handlers.threading import KazooTimeoutError
password = sys.stdin.readline().strip()
client = KazooClient(hosts={ZOOKEEPER_SERVERS!r}, auth_data=[("digest", "deployer:" + password)], timeout=10,
                     connection_retry={{"max_tries": -1, "delay": 0.2, "max_delay": 1}})
client.start(timeout=30)
client.ensure_path({ZOOKEEPER_PATH!r})
n = 1
while not os.path.exists("/tmp/rolling-restart-stop"):
    try:
        client.create({ZOOKEEPER_PATH!r} + "/" + str(n), str(n).encode())
    except NodeExistsError:
        pass  # an attempt that errored had been applied
    except (KazooException, KazooTimeoutError) as error:
        print("retry", n, type(error).__name__, flush=True)
        time.sleep(0.3)
        continue
    print("ack", n, flush=True)
    n += 1
client.stop()
"""

ZOOKEEPER_READER = f"""
import json, sys
from kazoo.client import KazooClient
password = sys.stdin.readline().strip()
client = KazooClient(hosts={ZOOKEEPER_SERVERS!r}, auth_data=[("digest", "deployer:" + password)], timeout=10)
client.start(timeout=30)
found = {{}}
if client.exists({ZOOKEEPER_PATH!r}):
    found = {{name: client.get({ZOOKEEPER_PATH!r} + "/" + name)[0].decode()
             for name in client.get_children({ZOOKEEPER_PATH!r})}}
    if sys.argv[1] == "delete":
        client.delete({ZOOKEEPER_PATH!r}, recursive=True)
client.stop()
print(json.dumps(found))
"""


class Writer:
    """A loop inside manager1 that writes 1, 2, 3, ... and says `ack <n>` for each acknowledged write."""

    def __init__(self, name: str, command: list, secret: str):
        self.name = name
        self.acknowledged = []
        self.retries = 0
        self._process = subprocess.Popen(
            ["docker", "exec", "--interactive", container("manager1"), *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._process.stdin.write(secret + "\n")
        self._process.stdin.flush()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._process.stdout:
            words = line.split()
            if words[:1] == ["ack"]:
                self.acknowledged.append(int(words[1]))
            elif words[:1] == ["retry"]:
                self.retries += 1

    def stop(self) -> "Writer":
        self._process.stdin.close()
        self._process.wait(timeout=30)
        self._thread.join(10)
        assert self.acknowledged == list(range(1, len(self.acknowledged) + 1)), f"{self.name}: acks out of order"
        return self


def start_writers() -> list:
    node_exec("manager1", "rm -f /tmp/rolling-restart-stop")
    password = (SECRETS / "zookeeper" / "zookeeper-deployer.password").read_text().strip()
    return [
        Writer("consul", ["bash", "-c", CONSUL_WRITER], consul_token("deployer")),
        Writer("zookeeper", ["python3", "-c", ZOOKEEPER_WRITER], password),
    ]


def stop_writers(writers: list) -> dict:
    node_exec("manager1", "touch /tmp/rolling-restart-stop")
    return {writer.name: writer.stop() for writer in writers}


def consul_written(host, delete: bool = False) -> dict:
    status, body = consul_api(host, f"kv/{CONSUL_PREFIX}/?recurse", consul_token("deployer"))
    assert status in (200, 404), body
    found = {}
    for entry in json.loads(body) if status == 200 else []:
        found[entry["Key"].rsplit("/", 1)[1]] = base64.b64decode(entry["Value"] or "").decode()
    if delete:
        assert consul_api(host, f"kv/{CONSUL_PREFIX}/?recurse", consul_token("deployer"), "DELETE")[0] == 200
    return found


def zookeeper_written(delete: bool = False) -> dict:
    password = (SECRETS / "zookeeper" / "zookeeper-deployer.password").read_text().strip()
    command = f"python3 -c {shlex.quote(ZOOKEEPER_READER)} {'delete' if delete else 'keep'}"
    return json.loads(node_exec("manager1", command, stdin=password + "\n").stdout)


def assert_none_lost(writer, written: dict) -> None:
    lost = [n for n in writer.acknowledged if written.get(str(n)) != str(n)]
    assert not lost, f"{writer.name}: {len(lost)} acknowledged write(s) lost, first {lost[:10]}"


def started(service: str, nodes) -> dict:
    """{node: (main PID, start time)} of a service: both change when it restarts."""
    show = f"systemctl show --property=MainPID,ActiveEnterTimestampMonotonic {service}"
    return {node: node_exec(node, show).stdout for node in nodes}


def zookeeper_mode(member: str) -> str:
    script = "exec 3<>/dev/tcp/127.0.0.1/2181 && printf srvr >&3 && timeout 5 cat <&3"
    answer = node_exec(member, f"bash -c {shlex.quote(script)}", check=False).stdout
    return next((line[6:] for line in answer.splitlines() if line.startswith("Mode: ")), "not serving")


def zookeeper_leader() -> str:
    leaders = [member for member in COORDINATION if zookeeper_mode(member) == "leader"]
    assert len(leaders) == 1, leaders
    return leaders[0]


def consul_leader(host) -> str:
    status, body = consul_api(host, "operator/raft/configuration", management_token())
    assert status == 200, body
    return next(server["Node"] for server in json.loads(body)["Servers"] if server["Leader"])


def rolling_restart(*arguments: str) -> subprocess.Popen:
    inventory = str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)
    return subprocess.Popen(
        ["ansible-playbook", "-i", inventory, str(PLAYBOOK), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_NOCOLOR": "1"},
    )


def folded(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def roll_under_writes(host, workdir: Path, component: str, service: str, members, version: str) -> str:
    """Runs the roll while the writers write and the app deploys `version`; returns the run's log."""
    before = started(service, members)
    writers = start_writers()
    time.sleep(2)  # both writers acknowledged some writes before anything goes down
    begun = time.monotonic()
    run = rolling_restart("-e", f"component={component}")
    deployment = {}
    options = app_options(APP, SERVICE_PORT, {"APP_VERSION": version}, "3s")
    deployer = threading.Thread(target=lambda: deployment.update(done=deploy(workdir, options)))
    deployer.start()
    log = run.communicate(timeout=600)[0]
    deployer.join(900)
    time.sleep(2)  # writes after the last restart
    by_name = stop_writers(writers)
    counts = ", ".join(f"{w.name} {len(w.acknowledged)} ({w.retries})" for w in by_name.values())
    print(f"{component} roll took {time.monotonic() - begun:.0f}s; writes acknowledged (retried): {counts}")
    assert run.returncode == 0, log[-6000:]
    after = started(service, members)
    assert not [m for m in members if after[m] == before[m]], f"not restarted: {before} {after}"
    assert_none_lost(by_name["consul"], consul_written(host, delete=True))
    assert_none_lost(by_name["zookeeper"], zookeeper_written(delete=True))
    assert all(len(w.acknowledged) >= 10 for w in by_name.values()), "a writer hardly wrote"
    done = deployment["done"].assert_ok()
    assert done.apps()[APP]["serving"] == 3
    return log


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    build_image()
    yield tmp_path_factory.mktemp("rolling-restart")
    deploy(tmp_path_factory.mktemp("rolling-restart-cleanup"), {"name": APP, "state": "absent"}).assert_ok()


@pytest.fixture(scope="module")
def routed(workdir):
    """The app serves: a renderer refuses a drop of every route, and the roll refuses a renderer that refuses."""
    deploy(workdir, app_options(APP, SERVICE_PORT, {"APP_VERSION": "r2"}, "3s")).assert_ok()


def test_consul_rolls_clients_first_and_the_leader_last_losing_no_write(host, workdir):
    leader = consul_leader(host)
    log = roll_under_writes(host, workdir, "consul", "consul", NODES, "r1")
    order = RESTARTED.findall(log)
    assert sorted(order) == sorted(NODES), order
    clients = [node for node in NODES if node not in COORDINATION]
    assert order[: len(clients)] == clients and order[-1] == leader, (order, leader)
    assert f"{leader} (leader, restarted last)" in log


def test_zookeeper_rolls_followers_first_and_the_leader_last_losing_no_write(host, workdir):
    leader = zookeeper_leader()
    log = roll_under_writes(host, workdir, "zookeeper", "zookeeper", COORDINATION, "r2")
    order = RESTARTED.findall(log)
    assert sorted(order) == sorted(COORDINATION) and order[-1] == leader, (order, leader)
    assert f"{leader} (leader, restarted last)" in log


def test_an_unknown_component_is_refused_naming_the_known_ones():
    run = rolling_restart("-e", "component=nginx")
    log = folded(run.communicate(timeout=120)[0])
    assert run.returncode != 0
    known = "consul, haproxy, registrator, renderer, zookeeper"
    assert f"unknown component nginx. Name one with -e component=<name>: {known}." in log
    assert not RESTARTED.findall(log)
    assert set(re.findall(r"changed=(\d+)", log)) == {"0"}, log[-2000:]


def test_a_roll_while_a_zookeeper_member_is_down_is_refused_naming_it_and_restarts_nothing():
    leader = zookeeper_leader()
    down = next(member for member in COORDINATION if member != leader)
    others = [member for member in COORDINATION if member != down]
    before = started("zookeeper", others)
    node_exec(down, "systemctl stop zookeeper")
    try:
        run = rolling_restart("-e", "component=zookeeper")
        log = folded(run.communicate(timeout=300)[0])
    finally:
        node_exec(down, "systemctl start zookeeper")
        wait_for(lambda: zookeeper_mode(down) == "follower", 90, 2, what=f"{down} back as a follower")
    assert run.returncode != 0
    assert f"refusing to restart zookeeper: {down}: does not serve" in log, log[-3000:]
    assert not RESTARTED.findall(log)
    assert started("zookeeper", others) == before


@pytest.mark.parametrize(
    ("component", "service"),
    [("haproxy", "haproxy"), ("renderer", "dockyard-renderer"), ("registrator", "dockyard-registrator")],
)
def test_a_daemon_with_no_quorum_rolls_every_host_once_in_the_planned_order(routed, component, service):
    before = started(service, NODES)
    run = rolling_restart("-e", f"component={component}")
    log = run.communicate(timeout=600)[0]
    assert run.returncode == 0, log[-3000:]
    after = started(service, NODES)
    assert not [node for node in NODES if after[node] == before[node]], f"not restarted: {before} {after}"
    planned = re.findall(rf"{component}: \d+ of {len(NODES)}: (\S+) \(", log)
    restarted = re.findall(r"^TASK \[Restart the service on (\S+)\] \**\nchanged: ", log, re.MULTILINE)
    assert sorted(planned) == sorted(NODES) and restarted == planned, (planned, restarted)
