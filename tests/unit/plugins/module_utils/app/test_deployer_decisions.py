"""The deployer's pure decisions, driven with plain data: Swarm tasks and versions, Consul keys, ledger entries.

Which tasks serve, the fleet the rollout arithmetic reads, which old versions
give up instances, what counts as a failure, the spec deployed now, which
entry a rollback restores, the route a spec asks for, the restart generation a
deployment wants, the nodes check mode's steps name, and those steps.
"""

import json

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.app import rollout
from ansible_collections.dockyard.platform.plugins.module_utils.app.deployer import (
    StepRecord,
    config_problem,
    converged,
    deployed_spec,
    eligible_nodes,
    failure_reason,
    fleet_of,
    old_drains,
    plan_steps,
    readiness_seconds,
    registered_instances,
    rollback_entry,
    route_document,
    running_nodes,
    still_registered,
    task_failures,
    task_ready,
    wanted_spec,
)
from ansible_collections.dockyard.platform.plugins.module_utils.app.ledger import Entry
from ansible_collections.dockyard.platform.plugins.module_utils.app.spec import parse_spec
from ansible_collections.dockyard.platform.plugins.module_utils.app.swarm import Node, Task, VersionService
from ansible_collections.dockyard.platform.plugins.module_utils.appconfig.layout import Status
from hypothesis import given
from hypothesis import strategies as st

PREFIX = "dockyard/"


def spec(image="lab/shop:1", instances=2, **options):
    return parse_spec({"name": "shop", "image": image, "instances": instances, "container_port": 8080, **options})


def task(task_id, state="running", desired="running", health=None, error=None, node="node-1"):
    return Task(task_id, 1, f"id-{node}", node, desired, state, error, f"c-{task_id}", health)


def node(hostname, state="ready", availability="active", **labels):
    return Node(f"id-{hostname}", hostname, state, availability, labels)


def version(app_spec, replicas, *tasks):
    return VersionService(
        app_spec.service_name, f"id-{app_spec.version_id}", app_spec.version_id, replicas, app_spec, tasks
    )


def instance_kv(*tasks, app="shop", node="node-1"):
    return {
        f"{PREFIX}instances/{node}/{app}/{task_id}": (json.dumps({"addr": "10.0.0.7", "port": 31000}).encode(), "s")
        for task_id in tasks
    }


V1, V2 = spec(), spec(image="lab/shop:2")
NODES = [node("node-1"), node("node-2")]


# -- which tasks serve ------------------------------------------------------------------
def test_registered_instances_are_matched_by_task_whatever_the_node_and_only_for_the_app():
    kv = {
        **instance_kv("t1", node="agent-1"),
        **instance_kv("t2", node="agent-2"),
        **instance_kv("t3", app="cart"),
        f"{PREFIX}instances/agent-1/shop/bad": (b"not json", "s"),
        f"{PREFIX}routes/shop": (b"{}", None),
    }
    assert sorted(registered_instances(kv, PREFIX, "shop")) == ["t1", "t2"]


@pytest.mark.parametrize(
    ("the_task", "registered", "ready"),
    [
        (task("t1"), {"t1"}, True),
        (task("t1", health="healthy"), {"t1"}, True),
        (task("t1"), set(), False),  # not in Consul yet: no router knows it
        (task("t1", health="starting"), {"t1"}, False),
        (task("t1", health="unhealthy"), {"t1"}, False),
        (task("t1", desired="shutdown"), {"t1"}, False),  # being drained
        (task("t1", state="preparing"), set(), False),
    ],
)
def test_a_task_serves_when_running_meant_to_run_not_unhealthy_and_registered(the_task, registered, ready):
    assert task_ready(the_task, dict.fromkeys(registered), needs_registration=True) is ready


def test_a_task_waits_for_the_routers_and_an_app_without_a_port_for_nothing_but_docker():
    assert task_ready(task("t1"), {"t1": None}, True, unrouted=frozenset({"t1"})) is False
    assert task_ready(task("t1"), {}, needs_registration=False) is True


# -- the fleet --------------------------------------------------------------------------
def test_the_fleet_counts_serving_old_tasks_and_the_new_versions_asked_for_beyond_what_serves():
    versions = [
        version(V1, 3, task("a"), task("b"), task("c", health="unhealthy")),
        version(V2, 3, task("d"), task("e", state="starting")),
    ]
    fleet = fleet_of(versions, V2.version_id, frozenset({"a", "b", "d"}))
    assert fleet == rollout.Fleet(old=2, new_healthy=1, new_starting=2)


def test_a_target_without_its_service_yet_has_nothing_starting():
    assert fleet_of([version(V1, 2)], V2.version_id, frozenset()) == rollout.Fleet()


def test_old_drains_take_leftovers_first_and_drop_tasks_that_do_not_serve():
    v0 = spec(image="lab/shop:0")
    versions = [
        version(V1, 4, task("a"), task("b"), task("c"), task("x", health="unhealthy")),
        version(v0, 1, task("z")),
        version(V2, 2),
    ]
    ready = frozenset({"a", "b", "c", "z"})
    assert old_drains(versions, V2.version_id, ready, 2) == [(v0.service_name, 0), (V1.service_name, 2)]
    assert old_drains(versions, V2.version_id, ready, 0) == []


# -- failures ---------------------------------------------------------------------------
def test_failures_are_this_deployments_failed_rejected_or_unhealthy_tasks():
    tasks = [
        task("old", state="failed", desired="shutdown", error="from an earlier deployment"),
        task("f", state="failed", desired="shutdown", error="task: non-zero exit (1)"),
        task("r", state="rejected", desired="shutdown", error="No such image: lab/shop:9"),
        task("u", health="unhealthy"),
        task("ok", health="healthy"),
    ]
    assert [found.id for found in task_failures(tasks, frozenset({"old"}))] == ["f", "r", "u"]


def test_repeated_task_failures_stop_the_roll_with_their_errors():
    failed = [
        task("f1", state="rejected", error="No such image: lab/shop:9"),
        task("f2", state="rejected", error="No such image: lab/shop:9"),
        task("u", health="unhealthy"),
    ]
    reason = failure_reason(rollout.Fleet(old=2, new_starting=2), failed, 1.0, 60.0, 3, "abc")
    assert reason == "3 task(s) of version abc failed: Docker health unhealthy; No such image: lab/shop:9"
    assert failure_reason(rollout.Fleet(old=2, new_starting=2), failed[:2], 1.0, 60.0, 3, "abc") is None


def test_an_instance_not_serving_within_its_health_bound_stops_the_roll():
    fleet = rollout.Fleet(old=2, new_healthy=1, new_starting=1)
    failed = [task("f", state="failed", error="task: non-zero exit (137)")]
    assert failure_reason(fleet, failed, 40.0, 40.5, 3, "abc") is None
    assert failure_reason(fleet, failed, 41.0, 40.5, 3, "abc") == (
        "1 instance(s) of version abc not serving within 40.5s (health check grace, failures x interval,"
        " and a margin) (task errors: task: non-zero exit (137))"
    )
    # Nothing starting: nothing to time out.
    assert failure_reason(rollout.Fleet(new_healthy=2), [], 999.0, 40.5, 3, "abc") is None


def test_the_readiness_bound_is_grace_plus_failures_times_interval_plus_the_margin():
    checked = spec(health={"command": "true", "grace_period": "10s", "failures": 3, "interval": "5s"})
    assert readiness_seconds(checked, 30) == 55
    assert readiness_seconds(spec(), 30) == 30


# -- what runs, what a rollback restores --------------------------------------------------
def test_the_deployed_spec_is_the_ledgers_when_its_version_runs_with_swarms_instance_count():
    last = spec(instances=2, hosts=["shop.example.com"])
    versions = [version(V1, 3), version(V2, 0)]
    assert deployed_spec(versions, last) == spec(instances=3, hosts=["shop.example.com"])
    # The ledger's version is gone: the version asking for most, from its label.
    assert deployed_spec([version(V2, 2)], last) == spec(image="lab/shop:2", instances=2)
    assert deployed_spec([version(V1, 0)], last) is None
    assert deployed_spec([], None) is None


def entry(deployment, version_id, outcome):
    return Entry("shop", "0000000001", deployment, version_id, "img", {}, "u", "h", "t", outcome=outcome)


HISTORY = [  # newest first, as Ledger.history gives it
    entry("d5", "v3", "rolled back"),
    entry("d4", "v2", "succeeded"),
    entry("d3", "v1", "succeeded"),
    entry("d2", "v1", "failed"),
    entry("d1", "v0", "succeeded"),
]


def test_a_plain_rollback_restores_the_newest_success_of_another_version_than_the_live_one():
    assert rollback_entry(HISTORY, "v2").deployment == "d3"
    # The live version failed without a rollback: the last success is the way back.
    assert rollback_entry(HISTORY, "v3").deployment == "d4"
    assert rollback_entry(HISTORY[:2], "v2") is None


def test_rollback_to_takes_a_deployment_id_or_the_newest_success_of_a_version():
    assert rollback_entry(HISTORY, "v2", "d2").deployment == "d2"
    assert rollback_entry(HISTORY, "v2", "v1").deployment == "d3"
    assert rollback_entry(HISTORY, "v2", "v3") is None  # never succeeded
    assert rollback_entry(HISTORY, "v2", "nope") is None


# -- the route --------------------------------------------------------------------------
def test_the_route_holds_hosts_port_and_http_check_and_keeps_the_route_modules_options():
    web = spec(hosts=["shop.example.com"], service_port=10080, health={"path": "/healthz", "interval": "2s"})
    stored = {"hosts": ["old.example.com"], "balance": "leastconn", "health": {"path": "/old"}}
    assert route_document(web, stored) == {
        "hosts": ["shop.example.com"],
        "service_port": 10080,
        "balance": "leastconn",
        "health": {"path": "/healthz", "expect_status": 200, "interval": "2000ms"},
    }
    assert route_document(spec(hosts=["a.example.com"], health={"command": "true"}), None) == {
        "hosts": ["a.example.com"]
    }
    assert route_document(spec(), stored) is None


# -- plan and steps ---------------------------------------------------------------------
def test_check_modes_plan_for_a_roll_creates_starts_waits_drains_and_removes():
    versions = [version(V1, 2, task("a"), task("b"))]
    steps = plan_steps(versions, V2, frozenset({"a", "b"}), route_changes=True, nodes=NODES)
    assert [(step["action"], step["count"], step["version"], step["nodes"]) for step in steps] == [
        ("route", 0, V2.version_id, []),
        ("create", 0, V2.version_id, []),
        ("start", 2, V2.version_id, ["node-1", "node-2"]),
        ("wait", 2, V2.version_id, ["node-1", "node-2"]),
        ("drain", 2, V1.version_id, ["node-1"]),
        ("remove", 0, V1.version_id, ["node-1"]),
    ]


def test_a_version_with_configuration_is_configured_on_its_eligible_nodes_before_its_service_exists():
    configured = spec(environment="qa", config=[{"contents": "x", "destination": "/etc/shop/shop.conf"}])
    versions = [version(V1, 2, task("a"), task("b"))]
    steps = plan_steps(versions, configured, frozenset({"a", "b"}), route_changes=False, nodes=NODES)
    assert [(step["action"], step["nodes"]) for step in steps[:2]] == [
        ("configure", ["node-1", "node-2"]),
        ("create", []),
    ]
    rerun = plan_steps([version(configured, 2, task("c"))], configured, frozenset({"c"}), False, NODES)
    assert "configure" not in [step["action"] for step in rerun]


def test_a_node_that_did_not_render_is_named_with_why():
    failing = Status("node-2", "shop--x", True, 7, (("page", "syntax error on line 1"),), 0.0)
    pending = Status("node-3", "shop--x", False, None, (), 0.0)
    assert config_problem("node-1", None) == "node-1 (no report from its agent)"
    assert config_problem("node-2", failing) == "node-2 (page: syntax error on line 1)"
    assert config_problem("node-3", pending) == "node-3 (not every file rendered yet)"


def test_check_modes_plan_for_a_scale_touches_only_the_current_version():
    versions = [version(V1, 2, task("a"), task("b"))]
    steps = plan_steps(versions, spec(instances=4), frozenset({"a", "b"}), route_changes=False, nodes=NODES)
    assert [(step["action"], step["count"]) for step in steps] == [("start", 2), ("wait", 2)]
    steps = plan_steps(versions, spec(instances=1), frozenset({"a", "b"}), route_changes=False, nodes=NODES)
    assert [(step["action"], step["count"]) for step in steps] == [("drain", 1)]


def test_check_modes_plan_for_a_restart_rolls_the_same_options_to_a_new_generation():
    versions = [version(V1, 2, task("a"), task("b", node="node-2"))]
    restarted = wanted_spec(spec(), "restarted", versions, V1)
    assert restarted.restart == 1 and restarted.version_id != V1.version_id
    assert V1.diff(restarted).changed == ("restart",)
    steps = plan_steps(versions, restarted, frozenset({"a", "b"}), route_changes=False, nodes=NODES)
    assert [(step["action"], step["count"], step["version"], step["nodes"]) for step in steps] == [
        ("create", 0, restarted.version_id, []),
        ("start", 2, restarted.version_id, ["node-1", "node-2"]),
        ("wait", 2, restarted.version_id, ["node-1", "node-2"]),
        ("drain", 2, V1.version_id, ["node-1", "node-2"]),
        ("remove", 0, V1.version_id, ["node-1", "node-2"]),
    ]


# -- the restart generation ---------------------------------------------------------------
def test_present_keeps_the_deployed_generation_and_restarted_takes_the_next():
    second = spec(restart=2)
    versions = [version(second, 2, task("a"))]
    assert wanted_spec(spec(), "present", versions, second) == second
    assert wanted_spec(spec(instances=3), "present", versions, second) == spec(instances=3, restart=2)
    assert wanted_spec(spec(image="lab/shop:2"), "present", versions, second).restart == 2
    assert wanted_spec(spec(), "restarted", versions, second) == spec(restart=3)
    # Read from the service's label when the ledger does not know the version that runs.
    assert wanted_spec(spec(), "restarted", versions, None) == spec(restart=3)


def test_an_app_with_no_service_starts_at_generation_0_and_one_scaled_to_none_keeps_its_own():
    gone = spec(restart=4)
    assert wanted_spec(spec(restart=7), "restarted", [], gone).restart == 0
    assert wanted_spec(spec(), "present", [], None).restart == 0
    idle = spec(instances=0, restart=4)
    assert wanted_spec(spec(instances=0), "present", [version(idle, 0)], idle) == idle


# -- the nodes a plan names -----------------------------------------------------------------
def test_eligible_nodes_are_ready_active_and_meet_the_constraints_as_swarm_reads_them():
    nodes = [
        node("n1", zone="eu-1", disk="ssd"),
        node("n2", zone="EU-1"),  # Swarm compares values regardless of case
        node("n3", zone="eu-2"),
        node("n4", "down", zone="eu-1"),
        node("n5", availability="drain", zone="eu-1"),
        node("n6", availability="pause", zone="eu-1"),
    ]
    assert eligible_nodes(nodes, spec()) == ["n1", "n2", "n3"]
    assert eligible_nodes(nodes, spec(constraints=["node.labels.zone==eu-1"])) == ["n1", "n2"]
    # A node without the label qualifies for != and not for ==.
    assert eligible_nodes(nodes, spec(constraints=["node.labels.disk!=ssd"])) == ["n2", "n3"]
    assert eligible_nodes(nodes, spec(constraints=["node.labels.disk==ssd"])) == ["n1"]
    assert eligible_nodes(nodes, spec(constraints=["node.hostname!=n1", "node.labels.zone==eu-1"])) == ["n2"]
    assert eligible_nodes(nodes, spec(constraints=["node.hostname==N3"])) == ["n3"]


def test_nodes_at_max_per_node_for_the_version_are_not_eligible_and_other_versions_do_not_count():
    nodes = [node("n1"), node("n2"), node("n3")]
    one_each = spec(constraints=["max_per_node=1"])
    running = version(one_each, 3, task("a", node="n1"), task("b", node="n2"), task("c", desired="shutdown", node="n3"))
    assert eligible_nodes(nodes, one_each, running) == ["n3"]
    assert eligible_nodes(nodes, spec(constraints=["max_per_node=2"]), running) == ["n1", "n2", "n3"]
    assert eligible_nodes(nodes, one_each, None) == ["n1", "n2", "n3"]


def test_a_drain_names_the_nodes_the_versions_instances_run_on_now():
    running = version(V1, 3, task("a", node="n2"), task("b", node="n1"), task("c", node="n2"))
    stopping = version(V1, 1, task("d", desired="shutdown", node="n3"), task("e", state="starting", node="n4"))
    assert running_nodes(running) == ["n1", "n2"]
    assert running_nodes(stopping) == []


def test_converged_means_one_service_of_the_wanted_version_with_the_wanted_count():
    assert converged([version(V1, 2)], V1)
    assert not converged([version(V1, 3)], V1)
    assert not converged([version(V1, 2), version(V2, 0)], V1)
    assert not converged([], V1)


def test_instances_still_registered_are_those_not_meant_to_run_in_the_target():
    versions = [version(V1, 1, task("a"), task("b", desired="shutdown")), version(V2, 1, task("c"))]
    registered = dict.fromkeys(["a", "b", "c"])
    assert still_registered(registered, versions, V1.version_id) == {"b", "c"}


def test_a_step_record_names_itself_for_the_ledger():
    assert StepRecord("start", 2, "abc", "2026-12-01T13:00:00Z").name == "start 2 abc"
    assert StepRecord("route", 0, "abc", "2026-12-01T13:00:00Z").name == "route abc"


@given(
    old=st.integers(0, 6),
    instances=st.integers(0, 6),
    capacities=st.tuples(st.integers(0, 4), st.integers(0, 4)).filter(lambda pair: pair != (4, 0)),
)
def test_a_planned_roll_ends_with_the_wanted_count_and_never_drains_below_the_minimum(old, instances, capacities):
    minimum_share, over_share = capacities[0] / 4, capacities[1] / 4
    wanted = spec(image="lab/shop:2", instances=instances, upgrade={
        "minimum_health_capacity": minimum_share, "maximum_over_capacity": over_share,
    })  # fmt: skip
    versions = [version(V1, old, *(task(f"t{index}") for index in range(old)))]
    ready = frozenset(f"t{index}" for index in range(old))
    steps = plan_steps(versions, wanted, ready, route_changes=False, nodes=NODES)
    minimum, _capacity = rollout.Strategy(minimum_share, over_share).bounds(instances)
    serving_old, serving_new = old, 0
    for step in steps:
        if step["action"] == "drain" and step["version"] == V1.version_id:
            serving_old -= step["count"]
            assert serving_old + serving_new >= min(minimum, old)
        elif step["action"] == "wait":
            serving_new += step["count"]
    assert serving_new == instances and serving_old == 0
