import json

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.daemon import routing
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
    """A Swarm task's labels (a label set to None is left out)."""
    found = {
        "org.dockyard.app": "web",
        "org.dockyard.port": "8080",
        "org.dockyard.version": "1.2.3",
        "com.docker.swarm.service.id": "svc0a1b2c3",
        "com.docker.swarm.task.id": "kq3v9x1",
    }
    found.update(extra)
    return {key: value for key, value in found.items() if value is not None}


def test_a_swarm_task_is_an_instance_keyed_node_first_by_its_task_id():
    instance = instances.instance_from(attrs(labels()), "node1", "10.0.0.5")
    assert instance.key("dockyard/") == "dockyard/instances/node1/web/kq3v9x1"
    assert instance.document() == {"addr": "10.0.0.5", "port": 32768, "version": "1.2.3", "track": "stable"}
    assert json.loads(instance.value()) == instance.document()


def test_the_key_is_the_routing_modules_and_reads_back_as_the_same_instance():
    instance = instances.instance_from(attrs(labels(**{"org.dockyard.track": "canary"})), "node1", "10.0.0.5")
    assert instance.key("p/") == routing.instance_key("p/", "node1", "web", "kq3v9x1")
    assert instance.key("p/").startswith(routing.node_instances_prefix("p/", "node1"))
    assert routing.parse_instance("node1/web/kq3v9x1", instance.value()) == instance
    assert instance.track == "canary"


@pytest.mark.parametrize(
    "missing",
    [
        ("com.docker.swarm.service.id", "com.docker.swarm.task.id"),  # a plain `docker run --label ...`
        ("com.docker.swarm.service.id",),
        ("com.docker.swarm.task.id",),
    ],
)
def test_only_a_swarm_services_task_is_registered(missing):
    with pytest.raises(instances.Skip) as skipped:
        instances.instance_from(attrs(labels(**dict.fromkeys(missing))), "node1", "10.0.0.5")
    assert str(skipped.value).startswith("container web.1: label org.dockyard.app on a container that is not a Swarm")
    assert "com.docker.swarm.service.id and com.docker.swarm.task.id" in str(skipped.value)


def test_an_empty_swarm_label_is_no_swarm_label():
    with pytest.raises(instances.Skip, match="not a Swarm service's task"):
        instances.instance_from(attrs(labels(**{"com.docker.swarm.task.id": ""})), "node1", "10.0.0.5")


@pytest.mark.parametrize(
    ("found", "address", "field"),
    [
        (labels(**{"org.dockyard.version": "1.0\nserver evil 10.9.9.9:80"}), "10.0.0.5", "version"),
        (labels(**{"org.dockyard.version": "1.0 # comment"}), "10.0.0.5", "version"),
        (labels(**{"org.dockyard.version": "v" * 256}), "10.0.0.5", "version"),
        (labels(**{"com.docker.swarm.task.id": "t\n"}), "10.0.0.5", "task"),
        (labels(**{"com.docker.swarm.task.id": "t" * 129}), "10.0.0.5", "task"),
        (labels(), "0.0.0.0", "addr"),
        (labels(), "224.0.0.1", "addr"),
        (labels(), "fe80::1%eth0", "addr"),
        (labels(), "node1.example", "addr"),
    ],
)
def test_what_the_routers_would_refuse_is_refused_at_the_source_naming_the_field(found, address, field):
    with pytest.raises(instances.Skip) as skipped:
        instances.instance_from(attrs(found), "node1", address)
    message = str(skipped.value)
    assert message.startswith("container web.1: the routers would refuse its instance: instance ")
    assert "node1/web/" in message
    assert f": {field}:" in message


def test_a_node_name_the_routers_refuse_refuses_every_instance():
    with pytest.raises(instances.Skip, match="node"):
        instances.instance_from(attrs(labels()), "node/1", "10.0.0.5")


def test_an_unlabelled_container_is_none_of_ours():
    assert instances.instance_from(attrs({"maintainer": "x"}), "node1", "10.0.0.5") is None
    assert instances.instance_from(attrs(None), "node1", "10.0.0.5") is None


def test_missing_version_is_an_empty_string():
    instance = instances.instance_from(attrs(labels(**{"org.dockyard.version": None})), "n", "10.0.0.5")
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
        (labels(**{"org.dockyard.app": "a/b"}), None, "label org.dockyard.app='a/b' is not an app name"),
        (labels(**{"org.dockyard.app": ""}), None, "label org.dockyard.app='' is not an app name"),
        (labels(**{"com.docker.swarm.task.id": "x/y"}), None, "label com.docker.swarm.task.id='x/y' is not a task"),
        (labels(**{"org.dockyard.app": "-web"}), None, "label org.dockyard.app='-web' is not an app name"),
        (labels(**{"org.dockyard.app": "web\n"}), None, "label org.dockyard.app='web\\n' is not an app name"),
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
    assert instances.key_for("d/", "n", labels()) == "d/instances/n/web/kq3v9x1"
    assert instances.key_for("d/", "n", labels(**{"com.docker.swarm.task.id": "t1"})) == "d/instances/n/web/t1"
    assert instances.key_for("d/", "n", labels(**{"org.dockyard.app": "a/b"})) is None
    assert instances.key_for("d/", "n", labels(**{"com.docker.swarm.task.id": None})) is None
    assert instances.key_for("d/", "n", {"org.dockyard.app": "web"}) is None


def test_owned_keys_are_everything_under_this_nodes_prefix_only():
    entries = {
        "d/instances/node1/web/t1": (b"{}", "s"),
        "d/instances/node2/web/t2": (b"{}", "s"),
        "d/instances/node1/api/t4": (b"{}", None),
        "d/instances/node1/web/t3/extra": (b"", None),  # no instance key, but under our prefix: ours to delete
        "d/instances/node10/web/t5": (b"{}", "s"),  # another node whose name starts with ours
        "d/instances/web/node1/t6": (b"{}", "old"),  # the old layout: outside our prefix
        "d/routes/web": (b"", None),
    }
    assert sorted(instances.owned(entries, "d/", "node1")) == [
        "d/instances/node1/api/t4",
        "d/instances/node1/web/t1",
        "d/instances/node1/web/t3/extra",
    ]


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
        "d/instances/node1/web/garbage": (b"not json", "ours"),
    }
    plan = instances.plan(desired, current, "ours")
    assert plan.puts == sorted(make(task).key("d/") for task in ("changed", "foreign", "missing", "unlocked"))
    assert plan.deletes == ["d/instances/node1/web/garbage", make("stale").key("d/")]
    assert plan


def test_plan_of_a_node_in_step_is_empty():
    desired = {make("a").key("d/"): make("a")}
    # Another serialisation of the same JSON is the same value.
    current = {make("a").key("d/"): (b'{"track":"stable","port":1000,"version":"1","addr":"10.0.0.5"}', "s")}
    assert not instances.plan(desired, current, "s")
