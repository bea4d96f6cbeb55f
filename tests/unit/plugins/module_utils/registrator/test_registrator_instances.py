import json

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.registrator import instances

CONTAINER_ID = "c0ffee" * 10 + "abcd"


def attrs(labels=None, ports=None, running=True, health=None, name="/web.1"):
    """Container attributes as the engine's inspect returns them (the parts the registrator reads)."""
    state = {"Running": running}
    if health is not None:
        state["Health"] = {"Status": health}
    return {
        "Id": CONTAINER_ID,
        "Name": name,
        "State": state,
        "Config": {"Labels": labels},
        "NetworkSettings": {
            "Ports": ports
            if ports is not None
            else {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}, {"HostIp": "::", "HostPort": "32768"}]}
        },
    }


def labels(**extra):
    found = {"org.dockyard.app": "web", "org.dockyard.port": "8080", "org.dockyard.version": "1.2.3"}
    found.update(extra)
    return {key: value for key, value in found.items() if value is not None}


def test_a_labelled_container_is_an_instance_keyed_by_its_container_id():
    instance = instances.instance_from(attrs(labels()), "node1", "10.0.0.5")
    assert instance.key("dockyard/") == f"dockyard/instances/web/node1/{CONTAINER_ID}"
    assert instance.document() == {"addr": "10.0.0.5", "port": 32768, "version": "1.2.3", "track": "stable"}
    assert json.loads(instance.value()) == instance.document()


def test_a_swarm_task_is_keyed_by_its_task_id_and_may_be_a_canary():
    found = labels(**{"com.docker.swarm.task.id": "kq3v9x1", "org.dockyard.track": "canary"})
    instance = instances.instance_from(attrs(found), "node1", "10.0.0.5")
    assert instance.key("p/") == "p/instances/web/node1/kq3v9x1"
    assert instance.track == "canary"


def test_an_unlabelled_container_is_none_of_ours():
    assert instances.instance_from(attrs({"maintainer": "x"}), "node1", "10.0.0.5") is None
    assert instances.instance_from(attrs(None), "node1", "10.0.0.5") is None


def test_missing_version_is_an_empty_string():
    instance = instances.instance_from(attrs(labels(**{"org.dockyard.version": None})), "n", "a")
    assert instance.version == ""


@pytest.mark.parametrize(
    ("found", "ports", "message"),
    [
        (labels(**{"org.dockyard.port": None}), None, "label org.dockyard.port is missing"),
        (labels(**{"org.dockyard.port": "http"}), None, "label org.dockyard.port='http' is not a TCP port"),
        (labels(**{"org.dockyard.port": "70000"}), None, "label org.dockyard.port='70000' is not a TCP port"),
        (labels(**{"org.dockyard.port": "9090"}), None, "9090/tcp is not published on the host"),
        (labels(), {"8080/tcp": None}, "8080/tcp is not published on the host"),  # exposed, not published
        (labels(), {"8080/udp": [{"HostPort": "1"}]}, "8080/tcp is not published on the host"),
        (labels(**{"org.dockyard.track": "beta"}), None, "label org.dockyard.track='beta' is not stable or canary"),
        (labels(**{"org.dockyard.app": "a/b"}), None, "label org.dockyard.app='a/b' cannot be a key segment"),
        (labels(**{"org.dockyard.app": ""}), None, "label org.dockyard.app='' cannot be a key segment"),
        (labels(**{"com.docker.swarm.task.id": "x/y"}), None, "task id 'x/y'"),
    ],
)
def test_a_mislabelled_container_is_skipped_naming_it_and_the_label(found, ports, message):
    with pytest.raises(instances.Skip) as skipped:
        instances.instance_from(attrs(found, ports), "node1", "10.0.0.5")
    assert str(skipped.value).startswith("container web.1: ")
    assert message in str(skipped.value)


def test_published_port_takes_the_first_usable_binding():
    assert instances.published_port(attrs(ports={"80/tcp": [{"HostPort": ""}, {"HostPort": "8081"}]}), 80) == 8081
    assert instances.published_port(attrs(ports={}), 80) is None
    assert instances.published_port({"NetworkSettings": {"Ports": None}}, 80) is None


@pytest.mark.parametrize(
    ("running", "health", "serving"),
    [
        (True, None, True),
        (True, "healthy", True),
        (True, "starting", False),
        (True, "unhealthy", False),
        (False, None, False),
    ],
)
def test_serving_means_running_and_healthy_when_checked(running, health, serving):
    assert instances.serving(attrs(labels(), running=running, health=health)) is serving


def test_key_for_an_event_from_labels_alone():
    assert instances.key_for("d/", "n", CONTAINER_ID, labels()) == f"d/instances/web/n/{CONTAINER_ID}"
    assert (
        instances.key_for("d/", "n", CONTAINER_ID, labels(**{"com.docker.swarm.task.id": "t1"}))
        == "d/instances/web/n/t1"
    )
    assert instances.key_for("d/", "n", CONTAINER_ID, labels(**{"org.dockyard.app": "a/b"})) is None


def test_owned_keys_are_this_nodes_only():
    entries = {
        "d/instances/web/node1/t1": (b"{}", "s"),
        "d/instances/web/node2/t2": (b"{}", "s"),
        "d/instances/web/node1": (b"", None),  # not an instance key
        "d/instances/web/node1/t3/extra": (b"", None),
        "d/routes/web": (b"", None),
        "d/instances/api/node1/t4": (b"{}", None),
    }
    assert sorted(instances.owned(entries, "d/", "node1")) == ["d/instances/api/node1/t4", "d/instances/web/node1/t1"]


def make(task, port=1000, node="node1"):
    return instances.Instance("web", node, task, "10.0.0.5", port, "1", "stable")


def test_plan_puts_what_is_missing_changed_or_not_ours_and_deletes_what_nothing_runs_for():
    desired = {make(task).key("d/"): make(task) for task in ("same", "missing", "changed", "foreign", "unlocked")}
    desired[make("changed").key("d/")] = make("changed", port=2000)
    current = {
        make("same").key("d/"): (make("same").value(), "ours"),
        make("changed").key("d/"): (make("changed").value(), "ours"),
        make("foreign").key("d/"): (make("foreign").value(), "theirs"),
        make("unlocked").key("d/"): (make("unlocked").value(), None),
        make("stale").key("d/"): (make("stale").value(), "ours"),
        "d/instances/web/node1/garbage": (b"not json", "ours"),
    }
    plan = instances.plan(desired, current, "ours")
    assert plan.puts == sorted(make(task).key("d/") for task in ("changed", "foreign", "missing", "unlocked"))
    assert plan.deletes == ["d/instances/web/node1/garbage", make("stale").key("d/")]
    assert plan


def test_plan_of_a_node_in_step_is_empty():
    desired = {make("a").key("d/"): make("a")}
    # Another serialisation of the same JSON is the same value.
    current = {make("a").key("d/"): (b'{"track":"stable","port":1000,"version":"1","addr":"10.0.0.5"}', "s")}
    assert not instances.plan(desired, current, "s")
