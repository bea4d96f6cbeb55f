"""The deployer on real parts: a one-node Swarm, the real registrator daemon on its engine, Consul and ZooKeeper.

One app, `shop`, is taken through a module's worth of deployments, each test
first bringing it to the state it starts from (an unchanged apply when the
previous test left it there): a first deployment, a scale up and down, a roll
v1 -> v2 during which another deployment is refused and the registered
instances never drop below the minimum, a v3 whose health check never passes
and is rolled back, an unchanged rerun that touches nothing, a route-only
change, a rollback_to, and (last) a restart that replaces every container. Two
more apps: `cart`, deployed with the routers checked (the router is a stand-in
writing its report into Consul) and then removed, and `ghost`, whose first
deployment fails and leaves nothing behind.
"""

import threading
import time
import urllib.request

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.app.deployer import Deployer, DeployError
from ansible_collections.dockyard.platform.plugins.module_utils.app.ledger import Ledger, Session
from ansible_collections.dockyard.platform.plugins.module_utils.app.spec import parse_spec
from ansible_collections.dockyard.platform.plugins.module_utils.app.swarm import SwarmClient
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.routing import parse_instance
from ansible_collections.dockyard.platform.plugins.module_utils.router.haproxy import Server
from ansible_collections.dockyard.platform.plugins.module_utils.router.report import Report
from support.waiting import wait_for

APP = "shop"
HTTPD = ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
# Short windows keep the module quick: a drained task stops 1 s after it left Consul, killed 1 s later.
DRAIN, GRACE = "1s", "1s"
# Added to the health check's own bound before a started instance counts as failed.
MARGIN_S = 8


@pytest.fixture(scope="module")
def images(swarm_node):
    swarm_node.busybox_image("lab/shop:1", HTTPD, "shop v1")
    swarm_node.busybox_image("lab/shop:2", HTTPD, "shop v2")


def make_deployer(swarm_node, consul, settings, prefix):
    session = Session(settings).open()
    swarm = SwarmClient(swarm_node.base_url, timeout=30)
    return Deployer(swarm, consul, session, prefix, margin=MARGIN_S, poll=0.2), session, swarm


@pytest.fixture(scope="module")
def deployer(swarm_node, images, registrator, consul, zk_settings, prefix):
    deployer, session, swarm = make_deployer(swarm_node, consul, zk_settings, prefix)
    yield deployer
    for version in swarm.versions(APP):
        swarm.remove(version.name)
    swarm.close()
    session.close()


def shop(version: int = 1, instances: int = 2, **options):
    return parse_spec(
        {
            "name": options.pop("name", APP),
            "image": options.pop("image", f"lab/shop:{version}"),
            "instances": instances,
            "cpus": 0.05,
            "mem": 32,
            "args": HTTPD,
            "container_port": 8080,
            "hosts": ["shop.example.com"],
            "health": {"command": "test -f /www/index.html", "interval": "1s", "grace_period": "1s"},
            "upgrade": {"drain_timeout": DRAIN},
            "stop_grace_period": GRACE,
            **options,
        }
    )


def instances(consul, prefix, app: str = APP) -> dict:
    """{task id: Instance} of the app as the registrator keeps them in Consul."""
    base = f"{prefix}instances/"
    found = {}
    for key, (value, _session) in consul.kv_recurse(base).items():
        instance = parse_instance(key[len(base) :], value)
        if instance.app == app:
            found[instance.task] = instance
    return found


def serving(deployer, version_id: str) -> dict:
    """{task id: container id} of the version's tasks that run and are meant to."""
    return {
        task.id: task.container_id
        for version in deployer.swarm.versions(APP)
        if version.version_id == version_id
        for task in version.tasks
        if task.state == "running" and task.desired_state == "running"
    }


def changes(result) -> list:
    """(action, count) of the result's changes, a run of one action as one: how many of the new instances turn
    healthy at each read of the fleet (hence waits and drains in between) is the engine's timing, not a decision."""
    merged = []
    for step in result.steps:
        if step["action"] in ("wait", "withdraw"):
            continue
        if merged and merged[-1][0] == step["action"]:
            merged[-1] = (step["action"], merged[-1][1] + step["count"])
        else:
            merged.append((step["action"], step["count"]))
    return merged


def answer(instance) -> str:
    with urllib.request.urlopen(f"http://{instance.address}/", timeout=5) as response:
        return response.read().decode().strip()


def test_a_first_deployment_converges_registered_and_reachable(deployer, consul, prefix):
    spec = shop()
    result = deployer.apply(spec, who="tester")

    assert result.changed
    assert [step["action"] for step in result.steps] == ["route", "create", "start", "wait"]
    assert all(step["outcome"] == "ok" for step in result.steps)
    tasks = serving(deployer, spec.version_id)
    registered = instances(consul, prefix)
    assert len(tasks) == 2 and set(registered) == set(tasks)
    assert {answer(instance) for instance in registered.values()} == {"shop v1"}
    assert [(v["version"], v["replicas"], v["serving"]) for v in result.versions] == [(spec.version_id, 2, 2)]
    route = consul.request("GET", f"/v1/kv/{prefix}routes/{APP}", params={"raw": "true"}).json()
    assert route == {"hosts": ["shop.example.com"]}
    entry = Ledger(deployer.session).history(APP)[0]
    assert (entry.deployment, entry.outcome, entry.user) == (result.deployment, "succeeded", "tester")


def test_scaling_up_and_down_leaves_the_running_containers_alone(deployer, consul, prefix):
    deployer.apply(shop())
    two = serving(deployer, shop().version_id)

    up = deployer.apply(shop(instances=4))
    four = serving(deployer, shop().version_id)
    assert changes(up) == [("start", 2)]
    assert len(four) == 4 and two.items() <= four.items()
    assert len(instances(consul, prefix)) == 4

    down = deployer.apply(shop(instances=2))
    # The drained instances have left Consul when apply returns (the withdraw step waits, unless it was quicker).
    assert changes(down) == [("drain", 2)]
    left = serving(deployer, shop().version_id)
    assert len(left) == 2 and left.items() <= four.items()
    assert set(instances(consul, prefix)) == set(left)


def test_a_roll_keeps_the_minimum_registered_refuses_a_second_deployment_and_ends_on_v2(
    deployer, consul, prefix, swarm_node, zk_settings
):
    deployer.apply(shop())
    v1, v2 = shop(), shop(version=2)
    planned = deployer.plan(v2)
    assert [(step["action"], step["count"]) for step in planned.steps] == [
        ("create", 0), ("start", 2), ("wait", 2), ("drain", 2), ("remove", 0),
    ]  # fmt: skip
    assert planned.diff["changed"] == ["image"] and [v["version"] for v in planned.versions] == [v1.version_id]
    lowest, stop = [len(instances(consul, prefix))], threading.Event()

    def watch():
        while not stop.is_set():
            lowest.append(len(instances(consul, prefix)))
            time.sleep(0.05)

    outcome = {}

    def roll():
        try:
            outcome["result"] = deployer.apply(v2, who="first")
        except Exception as error:  # reported by the assertions below
            outcome["error"] = error

    watcher, roller = threading.Thread(target=watch), threading.Thread(target=roll)
    watcher.start()
    roller.start()
    other, session, swarm = make_deployer(swarm_node, consul, zk_settings, prefix)
    try:
        lock = f"{zk_settings.chroot}/locks/{APP}"
        wait_for(lambda: session.client.exists(lock), timeout=10, what="the first roll to take the lock")
        started = time.monotonic()
        with pytest.raises(DeployError, match=r"app shop is being deployed: its lock is held by deployment '.*'"):
            other.apply(v2, who="second")
        assert time.monotonic() - started < 5
    finally:
        roller.join(120)
        stop.set()
        watcher.join()
        swarm.close()
        session.close()

    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert changes(result) == [("create", 0), ("start", 2), ("drain", 2), ("remove", 0)]
    # Marathon's default strategy (1.0, 1.0): every old instance serves until the new ones do.
    assert min(lowest) >= 2
    assert [version.version_id for version in deployer.swarm.versions(APP)] == [v2.version_id]
    registered = instances(consul, prefix)
    assert set(registered) == set(serving(deployer, v2.version_id))
    assert {instance.version for instance in registered.values()} == {v2.version_id}
    assert {answer(instance) for instance in registered.values()} == {"shop v2"}
    assert v1.version_id != v2.version_id


def test_a_version_whose_health_never_passes_is_rolled_back(deployer, consul, prefix):
    v2 = deployer.apply(shop(version=2))
    v2_deployment = v2.deployment or Ledger(deployer.session).last_successful(APP).deployment
    before = serving(deployer, shop(version=2).version_id)
    v3 = shop(
        version=2,
        env={"RELEASE": "3"},
        health={"command": "test -f /www/missing", "interval": "1s", "grace_period": "1s", "failures": 2},
    )

    with pytest.raises(DeployError) as raised:
        deployer.apply(v3)

    message = str(raised.value)
    assert f"version {v3.version_id}" in message
    assert f"the rollback completed: version {shop(version=2).version_id} serves with 2 instance(s)" in message
    assert [version.version_id for version in deployer.swarm.versions(APP)] == [shop(version=2).version_id]
    assert serving(deployer, shop(version=2).version_id) == before
    assert {answer(instance) for instance in instances(consul, prefix).values()} == {"shop v2"}
    entry = Ledger(deployer.session).history(APP)[0]
    assert (entry.version, entry.outcome, entry.rolled_back_to) == (v3.version_id, "rolled back", v2_deployment)
    assert entry.error in message


def test_an_unchanged_rerun_touches_nothing_and_a_route_change_touches_only_the_route(deployer, consul, prefix):
    deployer.apply(shop(version=2))
    ledger = Ledger(deployer.session)

    def service_versions():
        client = deployer.swarm.client
        return {
            version.name: (
                client.inspect_service(version.name)["Version"]["Index"],
                client.inspect_service(version.name)["UpdatedAt"],
            )
            for version in deployer.swarm.versions(APP)
        }

    services, history = service_versions(), ledger.history(APP)
    rerun = deployer.apply(shop(version=2))
    assert (rerun.changed, rerun.deployment, rerun.steps) == (False, None, [])
    assert service_versions() == services
    assert ledger.history(APP) == history

    plan = deployer.plan(shop(version=2, hosts=["shop.example.com", "www.shop.example.com"]))
    assert plan.changed and [step["action"] for step in plan.steps] == ["route"]
    assert plan.diff["changed"] == ["hosts"]
    rerouted = deployer.apply(shop(version=2, hosts=["shop.example.com", "www.shop.example.com"]))
    assert [step["action"] for step in rerouted.steps] == ["route"]
    assert service_versions() == services
    route = consul.request("GET", f"/v1/kv/{prefix}routes/{APP}", params={"raw": "true"}).json()
    assert route == {"hosts": ["shop.example.com", "www.shop.example.com"]}


def test_rollback_to_an_earlier_version_rolls_to_its_recorded_spec(deployer, consul, prefix):
    deployer.apply(shop(version=2))
    ledger = Ledger(deployer.session)
    target = next(entry for entry in ledger.history(APP) if entry.version == shop().version_id)

    result = deployer.roll_back(APP, shop().version_id, who="tester")

    assert changes(result) == [("create", 0), ("start", 2), ("drain", 2), ("remove", 0)]
    assert [version.version_id for version in deployer.swarm.versions(APP)] == [shop().version_id]
    assert {answer(instance) for instance in instances(consul, prefix).values()} == {"shop v1"}
    entry = ledger.history(APP)[0]
    assert (entry.deployment, entry.outcome, entry.rolled_back_to) == (
        result.deployment,
        "succeeded",
        target.deployment,
    )


def test_with_routers_checked_an_instance_serves_once_up_on_every_router_and_absent_removes_the_app(
    deployer, consul, prefix, consul_agent
):
    """The router is a stand-in: the test writes its report into Consul in the reporter's format (Report.value())."""
    checked = Deployer(deployer.swarm, consul, deployer.session, prefix, routers=("edge-1",), margin=MARGIN_S, poll=0.2)
    cart = shop(name="cart", instances=1, hosts=["cart.example.com"])
    report_key = f"{prefix}routers/edge-1"
    consul_agent.put(report_key, report({}))
    marked = {}

    def router():
        found = wait_for(lambda: instances(consul, prefix, "cart"), timeout=60, what="cart's instance in Consul")
        time.sleep(1.5)  # the instance is registered, not yet UP on the router: the deployer must wait
        servers = {f"swarm-node-{task}": Server(i.addr, i.port, "UP", 1) for task, i in found.items()}
        consul_agent.put(report_key, report({"app_cart": servers}))
        marked["at"] = time.monotonic()

    marker = threading.Thread(target=router)
    marker.start()
    try:
        result = checked.apply(cart)
    finally:
        marker.join(70)
    returned = time.monotonic()
    assert returned >= marked["at"]
    waits = [step for step in result.steps if step["action"] == "wait"]
    assert waits and waits[0]["duration"] >= 1.5

    removed = checked.apply(cart, state="absent")
    assert [step["action"] for step in removed.steps if step["action"] != "withdraw"] == ["remove", "route"]
    assert instances(consul, prefix, "cart") == {}
    assert deployer.swarm.versions("cart") == []
    assert consul_agent.get(f"{prefix}routes/cart") is None
    assert Ledger(deployer.session).history("cart")[0].outcome == "succeeded"
    assert checked.apply(cart, state="absent").changed is False


def report(backends: dict) -> bytes:
    return Report("edge-1", time.time(), 30_000, reloads=1, worker=1, backends=backends).value()


def test_a_first_deployment_that_fails_is_removed_with_its_route(deployer, consul, prefix):
    claiming = shop(name="ghost", hosts=["shop.example.com"])
    with pytest.raises(
        DeployError, match=r"route ghost: refused, it claims host shop.example.com \(taken by route shop\)"
    ):
        deployer.apply(claiming)
    assert deployer.swarm.versions("ghost") == [] and Ledger(deployer.session).history("ghost") == []

    missing = shop(name="ghost", image="lab/ghost:1", hosts=["ghost.example.com"])
    with pytest.raises(DeployError) as raised:
        deployer.apply(missing)

    message = str(raised.value)
    assert f"task(s) of version {missing.version_id} failed" in message and "lab/ghost:1" in message
    assert f"there was nothing to roll back to, so version {missing.version_id} was removed" in message
    assert deployer.swarm.versions("ghost") == []
    assert consul.request("GET", f"/v1/kv/{prefix}routes/ghost").status == 404
    entry = Ledger(deployer.session).history("ghost")[0]
    assert (entry.outcome, entry.rolled_back_to) == ("failed", None)
    assert [step["name"].split()[0] for step in entry.steps] == ["route", "create", "start", "wait", "route", "remove"]


def test_a_restart_rolls_every_instance_to_a_fresh_container_and_a_rerun_of_present_changes_nothing(
    deployer, consul, prefix
):
    deployer.apply(shop())
    before = serving(deployer, shop().version_id)

    planned = deployer.plan(shop(), state="restarted")
    assert planned.diff["changed"] == ["restart"] and planned.diff["after"] == {"restart": 1}
    start = next(step for step in planned.steps if step["action"] == "start")
    assert start["nodes"] == ["swarm-node"]
    result = deployer.apply(shop(), state="restarted", who="tester")

    assert changes(result) == [("create", 0), ("start", 2), ("drain", 2), ("remove", 0)]
    (restarted,) = deployer.swarm.versions(APP)
    assert restarted.version_id != shop().version_id and restarted.spec.restart == 1
    after = serving(deployer, restarted.version_id)
    assert len(after) == 2 and not set(after.values()) & set(before.values()), "a container was kept"
    assert set(instances(consul, prefix)) == set(after)
    entry = Ledger(deployer.session).history(APP)[0]
    assert (entry.deployment, entry.version, entry.spec["restart"]) == (result.deployment, restarted.version_id, 1)

    rerun = deployer.apply(shop())
    assert (rerun.changed, rerun.deployment, rerun.steps) == (False, None, [])
    assert serving(deployer, restarted.version_id) == after
