"""The app module on the whole platform: deployed with playbooks/deploy_app.yml as an operator does, while
clients of four kinds load every router (load.py).

The app (app-image/) exits at once on SIGTERM, answers 503 until READY_AFTER seconds after its start, and
reports each POST it executes to a counter on the controller. Tests run in file order and build on each
other: v1 and its scaling, the roll to v2 under load, v3 that never gets healthy, a rollback two deployments
back, check mode, memory, the Marathon examples, removal.
"""

import json
import re
import shlex
import subprocess
import threading
import time

import pytest
from cluster import CONSUL_CURL, NODES, SECRETS, TOKENS, container, node_address, node_exec
from deploying import IMAGE, ROOT, app_options, build_image, containers, deploy, every_id
from load import Counter, Load
from support.waiting import wait_for

testinfra_hosts = ["manager1"]

MARATHON_EXAMPLES = ROOT / "docs" / "examples" / "marathon"
APP = "pay"
SERVICE_PORT = 10090
ZOOKEEPER_DUMP = """
import json, sys
from kazoo.client import KazooClient
password = sys.stdin.read()
client = KazooClient(hosts="agent1:2181", auth_data=[("digest", "deployer:" + password)])
client.start(timeout=15)
tree = {}
def walk(path):
    data, stat = client.get(path)
    tree[path] = [data.decode(errors="replace"), stat.mzxid, stat.pzxid]
    for child in sorted(client.get_children(path)):
        walk(path.rstrip("/") + "/" + child)
walk("/dockyard")
client.stop()
print(json.dumps(tree, sort_keys=True))
"""


def spec(version: str, env: dict | None = None, **changes) -> dict:
    """The app's options for deploy_app.yml; version (APP_VERSION, what the app answers) and env shape its container."""
    variables = {"APP_VERSION": version, "COUNTER_URL": COUNTER_URL[0], **(env or {})}
    return {**app_options(APP, SERVICE_PORT, variables, "4s"), **changes}


COUNTER_URL = [""]  # set by the counter fixture, before any spec is made
# v2 answers 503 for 5 s after its start: a request an instance gets before it is ready fails.
READY_AFTER_5 = {"READY_AFTER": "5"}


def consul_kv(host) -> list:
    """Every key under dockyard/ but the routers' reports (rewritten as they serve), with its value and index."""
    token = json.loads((TOKENS / "deployer.json").read_text())["SecretID"]
    answer = host.check_output(
        f"{CONSUL_CURL} --header 'X-Consul-Token: {token}' 'https://127.0.0.1:8501/v1/kv/dockyard/?recurse'"
    )
    return sorted(
        (entry["Key"], entry.get("Value"), entry["ModifyIndex"])
        for entry in json.loads(answer)
        if not entry["Key"].startswith("dockyard/routers/")
    )


def zookeeper_tree() -> dict:
    password = (SECRETS / "zookeeper" / "zookeeper-deployer.password").read_text().strip()
    dumped = node_exec("manager1", f"python3 -c {shlex.quote(ZOOKEEPER_DUMP)}", stdin=password).stdout
    return json.loads(dumped)


def held_back(container_prefix: str) -> dict:
    """{container: seconds} that each registrator kept a container out of Consul until its check first passed.

    From the registrators' `ready` log lines (logfmt) on every node, for the containers whose names start so.
    """
    held = {}
    for name in NODES:
        log = node_exec(name, "journalctl --unit dockyard-registrator --no-pager --output cat").stdout
        for line in log.splitlines():
            fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line))
            if fields.get("msg") == "ready" and fields.get("container", "").startswith(container_prefix):
                held[fields["container"]] = float(fields["after"].rstrip("s"))
    return held


def answers(routers: list, rounds: int = 10) -> list:
    """The first word (the version) of rounds fresh GETs to each router; fails on anything but 200."""
    load = Load(routers, SERVICE_PORT)
    seen = []
    for _round in range(rounds):
        for router in routers:
            assert load.send("fresh", router, "GET", "/cgi-bin/app"), load.result.failures
    seen.extend(load.result.bodies.elements())
    return seen


@pytest.fixture(scope="module")
def routers():
    return [node_address(name) for name in NODES]


@pytest.fixture(scope="module")
def counter():
    """The counter of POST executions, at the address the lab hosts reach this machine by (their gateway)."""
    gateway_of = ["docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}"]
    gateway = subprocess.run([*gateway_of, container("manager1")], check=True, capture_output=True, text=True)
    gateway = gateway.stdout.strip()
    server = Counter().start()
    COUNTER_URL[0] = f"http://{gateway}:{server.port}"
    yield server
    server.stop()


@pytest.fixture(scope="module")
def image():
    build_image()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("deploy")


@pytest.fixture(scope="module")
def v1(image, counter, routers, workdir):
    """The app deployed at v1 with three instances; removed with every other app of this file at the end."""
    first = deploy(workdir, spec("v1")).assert_ok()
    yield first
    for app in (APP, "shop", "mailer"):
        deploy(workdir, {"name": app, "state": "absent"}).assert_ok()


def test_v1_serves_then_scales_to_ten_and_back_leaving_running_instances_alone(v1, routers, workdir):
    assert v1.app["changed"] is True
    assert v1.apps()[APP]["serving"] == 3
    assert set(answers(routers)) == {"v1"}
    at_three = containers(APP)

    ten = deploy(workdir, spec("v1", instances=10)).assert_ok()
    assert ten.apps()[APP]["serving"] == 10
    assert [step["action"] for step in ten.app["steps"]][:1] == ["start"]
    at_ten = containers(APP)
    assert every_id(at_three) <= every_id(at_ten), "scaling up restarted a running instance"
    assert len(every_id(at_ten)) == 10

    back = deploy(workdir, spec("v1")).assert_ok()
    assert back.apps()[APP]["serving"] == 3
    actions = {step["action"] for step in back.app["steps"]}
    assert "drain" in actions and not actions & {"create", "start", "remove"}, back.app["steps"]
    wait_for(lambda: len(every_id(containers(APP))) == 3, 60, 1, what="the drained instances to stop")
    assert every_id(containers(APP)) <= every_id(at_ten), "scaling down restarted a running instance"
    assert set(answers(routers)) == {"v1"}


def test_a_roll_under_load_fails_no_request_runs_no_post_twice_and_ends_on_v2(v1, routers, counter, workdir):
    load = Load(routers, SERVICE_PORT).start()
    time.sleep(3)  # every kind of client busy, slow requests in flight, before the roll starts
    rolled = deploy(workdir, spec("v2", READY_AFTER_5))
    after = answers(routers)
    result = load.stop()
    rolled.assert_ok()
    print(f"roll to v2 took {rolled.duration:.0f}s: {result.summary()}")
    assert not result.failures, result.summary()
    assert min(result.ok[kind] for kind in ("fresh", "keepalive", "slow", "post")) > 0, result.summary()
    assert "v2" in result.bodies and "v1" in result.bodies, "the load saw both versions"
    executed = counter.executed()
    assert not {key: count for key, count in executed.items() if count > 1}, "a POST was executed twice"
    assert all(executed.get(request_id) == 1 for request_id in result.posts_acknowledged)
    assert set(after) == {"v2"}, "a request after the module returned was served by another version"
    assert rolled.apps()[APP]["serving"] == 3
    # No 503 above means no request reached an instance before it was ready; what kept them out: each registrator
    # registered v2's instances only once their check passed, about 5 s after they started.
    held = held_back(f"{APP}--{rolled.apps()[APP]['version']}.")
    assert len(held) >= 3 and min(held.values()) >= 3.5, held


def test_a_version_that_never_gets_healthy_is_rolled_back_without_a_failed_request(v1, routers, workdir):
    load = Load(routers, SERVICE_PORT).start()
    broken = deploy(workdir, spec("v3", {"HEALTHY": "no"}))
    result = load.stop()
    print(f"v3 attempt took {broken.duration:.0f}s: {result.summary()}")
    assert broken.returncode != 0
    message = broken.app.get("msg", "")
    assert "not serving within" in message and "the rollback completed" in message, message
    assert not result.failures, result.summary()
    assert set(result.bodies) == {"v2"}
    assert set(answers(routers)) == {"v2"}


def test_a_second_deployment_fails_at_once_naming_the_holder_and_rollback_to_two_back_works(routers, workdir):
    ledger = zookeeper_tree()
    entries = sorted(path for path in ledger if path.startswith(f"/dockyard/deployments/{APP}/"))
    records = [json.loads(ledger[path][0]) for path in entries]
    # Succeeded so far: v1, v1 at ten, v1 at three, v2 (v3 was rolled back). Two before v2: v1 at ten.
    succeeded = [record for record in records if record["outcome"] == "succeeded"]
    target = succeeded[-3]
    assert (target["spec"]["instances"], target["spec"]["env"]["APP_VERSION"]) == (10, "v1"), target

    first = {}
    rolling = threading.Thread(
        target=lambda: first.setdefault("run", deploy(workdir, {"name": APP, "rollback_to": target["deployment"]}))
    )
    rolling.start()
    wait_for(lambda: f"/dockyard/locks/{APP}" in zookeeper_tree(), 60, 0.5, what="the first deployment's lock")
    second = deploy(workdir, spec("v2", READY_AFTER_5, instances=4))
    rolling.join(600)
    message = second.app.get("msg", "")
    assert second.returncode != 0 and "its lock is held by deployment" in message and "on host" in message, message
    assert second.duration < 30, "the second deployment waited instead of failing at once"

    first["run"].assert_ok()
    status = first["run"].apps()[APP]
    assert status["serving"] == 10
    assert status["history"][0]["outcome"] == "succeeded"
    assert set(answers(routers)) == {"v1"}


def test_check_mode_shows_plan_and_diff_and_changes_nothing_and_a_rerun_changes_nothing(host, routers, workdir):
    deploy(workdir, spec("v2", READY_AFTER_5)).assert_ok()
    wait_for(lambda: len(every_id(containers(APP))) == 3, 60, 1, what="the drained instances to stop")
    assert set(answers(routers)) == {"v2"}
    before = (containers(APP), consul_kv(host), zookeeper_tree())

    planned = deploy(workdir, spec("v4", instances=4), "--check", "--diff")
    assert planned.returncode == 0, planned.output
    assert planned.app["changed"] is True
    plan = planned.app["plan"]
    assert plan["steps"] and {step["action"] for step in plan["steps"]} >= {"create", "start", "drain", "remove"}
    diff = planned.app["diff"]
    assert (diff["before"]["env.APP_VERSION"], diff["after"]["env.APP_VERSION"]) == ("v2", "v4"), diff
    assert (diff["before"]["instances"], diff["after"]["instances"]) == (3, 4), diff
    assert (containers(APP), consul_kv(host), zookeeper_tree()) == before

    rerun = deploy(workdir, spec("v2", READY_AFTER_5)).assert_ok()
    assert rerun.app["changed"] is False and not rerun.app["steps"]
    assert containers(APP) == before[0]


def test_an_instance_over_its_memory_limit_is_replaced_and_its_neighbours_keep_serving(routers, workdir):
    hog_spec = {**spec("hog"), "name": "hog", "instances": 1, "hosts": ["hog.dockyard.test"], "service_port": 10091}
    deploy(workdir, {**hog_spec, "mem": 16, "constraints": ["node.hostname==agent1"]}).assert_ok()
    hog = node_exec("agent1", "docker ps --quiet --no-trunc --filter label=org.dockyard.app=hog").stdout.split()
    neighbours = containers(APP)["agent1"]
    node_exec("agent1", f"docker exec {hog[0]} wget -q -O /dev/null http://127.0.0.1/cgi-bin/oom", check=False)
    wait_for(
        lambda: (
            node_exec("agent1", f"docker inspect --format '{{{{.State.OOMKilled}}}}' {hog[0]}").stdout.strip() == "true"
        ),
        30,
        0.5,
        what="the instance over its limit to be killed",
    )

    def replaced():
        listed = node_exec("agent1", "docker ps --quiet --no-trunc --filter label=org.dockyard.app=hog").stdout
        return set(listed.split()) - set(hog)

    wait_for(replaced, 60, 1, what="Swarm to replace the killed instance")
    assert containers(APP)["agent1"] == neighbours, "a neighbour on the node was restarted"
    assert set(answers(routers)) == {"v2"}
    deploy(workdir, {"name": "hog", "state": "absent"}).assert_ok()


def test_the_marathon_examples_deploy_and_an_unknown_field_fails_in_strict_mode(routers, workdir):
    # The examples' registry is not in this lab: their images become the test image, nothing else changes.
    node_exec("manager1", "docker node update --label-add disk=ssd --label-add zone=a manager1")
    node_exec("manager1", "docker node update --label-add disk=ssd --label-add zone=b --label-add role=batch agent1")
    node_exec("manager1", "docker node update --label-add disk=ssd --label-add zone=c --label-add role=batch agent2")
    for example in ("web", "worker"):
        definition = json.loads((MARATHON_EXAMPLES / f"{example}.json").read_text())
        definition["container"]["docker"]["image"] = IMAGE
        done = deploy(workdir, {"marathon_app": definition}).assert_ok()
        name = definition["id"].strip("/")
        status = done.apps()[name]
        assert status["serving"] == definition["instances"], status
        print(f"{example}.json: {status['serving']} serving; Marathon notes {done.app.get('marathon')}")
    assert len({name for name, ids in containers("shop").items() if ids}) == 3, "UNIQUE: one per host"

    definition["upgradeStrategy"]["maximumOverCapacity"] = 0.5
    definition["residency"] = {"taskLostBehavior": "WAIT_FOREVER"}
    refused = deploy(workdir, {"marathon_app": definition})
    assert refused.returncode != 0 and "residency" in refused.app.get("msg", ""), refused.app
