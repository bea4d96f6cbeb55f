"""dockyard.platform.app and app_info as Ansible runs them, on real parts: a one-node Swarm with the registrator,
Consul and ZooKeeper. The deployer's own behaviour is test_deployer.py's; here: options to spec, check mode and
diff, the result, a second run, bad input failing before any change naming the option, Marathon's strict mode,
app_info, and removal."""

import importlib
import json
from pathlib import Path

import docker
import pytest
from ansible.module_utils.testing import patch_module_args

app = importlib.import_module("ansible_collections.dockyard.platform.plugins.modules.app")
app_info = importlib.import_module("ansible_collections.dockyard.platform.plugins.modules.app_info")

HTTPD = ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples" / "marathon"


@pytest.fixture(scope="module")
def image(swarm_node):
    swarm_node.busybox_image("lab/web:1", HTTPD, "web v1")
    return "lab/web:1"


@pytest.fixture
def run(capsys, swarm_node, zookeeper, consul_agent, prefix, zk_settings, registrator):
    def run_module(module, check_mode=False, diff=False, **args):
        connection = {
            "docker_host": swarm_node.base_url,
            "zookeeper_hosts": zookeeper.hosts,
            "zookeeper_chroot": zk_settings.chroot,
            "address": consul_agent.address,
            "prefix": prefix,
        }
        args = {**connection, **args, "_ansible_check_mode": check_mode, "_ansible_diff": diff}
        with patch_module_args(args), pytest.raises(SystemExit):
            module.main()
        return json.loads(capsys.readouterr().out)

    return run_module


def web(image, **options):
    return {
        "name": "web",
        "image": image,
        "instances": 2,
        "cpus": 0.05,
        "mem": 32,
        "args": HTTPD,
        "container_port": 8080,
        "hosts": ["web.example.com"],
        "health": {"command": "test -f /www/index.html", "interval": "1s", "grace_period": "1s"},
        "upgrade": {"drain_timeout": "1s"},
        "stop_grace_period": "1s",
        **options,
    }


def services(swarm_node) -> dict:
    """{service name: its version index} of the apps here: any write to a service moves its index."""
    client = docker.APIClient(base_url=swarm_node.base_url, version="auto")
    try:
        found = client.services()
    finally:
        client.close()
    return {
        service["Spec"]["Name"]: service["Version"]["Index"]
        for service in found
        if service["Spec"]["Name"].startswith(("web--", "bad--"))
    }


def test_check_mode_plans_then_a_deployment_converges_and_a_rerun_changes_nothing(run, image, swarm_node, consul_agent):
    planned = run(app, check_mode=True, **web(image))
    assert planned["changed"] is True and services(swarm_node) == {}, "check mode creates nothing"
    assert [step["action"] for step in planned["plan"]["steps"]][:2] == ["route", "create"]
    start = next(step for step in planned["plan"]["steps"] if step["action"] == "start")
    assert start["nodes"] == ["swarm-node"], "the one node of the Swarm is where instances may start"

    deployed = run(app, **web(image))
    assert deployed.get("changed") is True, deployed
    assert deployed["deployment"] and [version["serving"] for version in deployed["versions"]] == [2]
    written = services(swarm_node)

    again = run(app, **web(image))
    assert again["changed"] is False and services(swarm_node) == written, "a rerun writes nothing"

    scaled = run(app, check_mode=True, diff=True, **web(image, instances=3))
    assert scaled["changed"] is True and services(swarm_node) == written
    assert scaled["diff"]["before"]["instances"] == 2 and scaled["diff"]["after"]["instances"] == 3
    assert [(step["action"], step["nodes"]) for step in scaled["plan"]["steps"]] == [
        ("start", ["swarm-node"]),
        ("wait", ["swarm-node"]),
    ]

    info = run(app_info, name="web")
    (entry,) = info["apps"]
    assert entry["serving"] == 2 and entry["desired"] == 2 and entry["history"][0]["outcome"] == "succeeded"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"image": "lab/web:latest"}, "image"),
        ({"image": "lab/web"}, "image"),
        ({"instances": -1}, "instances"),
        ({"mem": 4}, "mem"),
        ({"health": {"path": "/h c"}}, "health.path"),
        ({"service_port": 80}, None),
    ],
    ids=["latest", "untagged", "negative-instances", "too-little-memory", "health-path-space", "router-port"],
)
def test_bad_input_fails_naming_the_option_before_any_change(run, image, swarm_node, options, field):
    before = services(swarm_node)
    result = run(app, **{**web(image, name="bad"), **options})
    assert result["failed"] is True
    if field is not None:
        assert result["field"] == field and result["msg"].startswith(f"{field}: "), result
    else:
        assert "one of the router's own ports" in result["msg"], result
    assert services(swarm_node) == before


def test_a_marathon_definition_with_an_unknown_field_fails_in_strict_mode_naming_it(run, image):
    definition = json.loads((EXAMPLES / "worker.json").read_text())
    definition["residency"] = {"taskLostBehavior": "WAIT_FOREVER"}
    result = run(app, marathon_app=definition)
    assert result["failed"] is True and "residency" in result["msg"], result


def test_state_absent_removes_every_version_and_the_route(run, image, swarm_node, consul_agent, prefix):
    run(app, **web(image))
    removed = run(app, name="web", state="absent")
    assert removed["changed"] is True and services(swarm_node) == {}
    assert consul_agent.get(f"{prefix}routes/web") is None
    assert run(app, name="web", state="absent")["changed"] is False
