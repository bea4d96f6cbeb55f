"""dockyard.platform.route against a real Consul agent on loopback: the routers' gate runs before the write."""

import importlib
import json

import pytest
from ansible.module_utils.testing import patch_module_args

route = importlib.import_module("ansible_collections.dockyard.platform.plugins.modules.route")


@pytest.fixture
def prefix(request, consul_agent):
    name = f"rt-{request.node.name.replace('[', '-').replace(']', '')}/"
    consul_agent.delete_tree(name)
    return name


@pytest.fixture
def run(capsys, consul_agent, prefix):
    def run_route(check_mode=False, diff=False, **args):
        args = {"address": consul_agent.address, "prefix": prefix, **args}
        args.update(_ansible_check_mode=check_mode, _ansible_diff=diff)
        with patch_module_args(args), pytest.raises(SystemExit):
            route.main()
        return json.loads(capsys.readouterr().out)

    return run_route


def modify_index(agent, key):
    found, _headers = agent.request("GET", f"/v1/kv/{key}")
    return found[0]["ModifyIndex"]


def test_a_route_is_written_once_and_a_second_run_changes_nothing(consul_agent, prefix, run):
    spec = {"name": "shop", "hosts": ["shop.example.com"], "service_port": 10080, "health": {"path": "/healthz"}}
    checked = run(check_mode=True, diff=True, **spec)
    assert checked["changed"] and consul_agent.get(f"{prefix}routes/shop") is None, "check mode writes nothing"
    assert checked["diff"]["after"]["hosts"] == ["shop.example.com"]
    first = run(**spec)
    assert first["changed"] and first["key"] == f"{prefix}routes/shop"
    stored = json.loads(consul_agent.get(f"{prefix}routes/shop"))
    assert stored == {"hosts": ["shop.example.com"], "service_port": 10080, "health": {"path": "/healthz"}}
    index = modify_index(consul_agent, f"{prefix}routes/shop")
    second = run(**spec)
    assert not second["changed"]
    assert modify_index(consul_agent, f"{prefix}routes/shop") == index, "no write on the second run"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"hosts": ["evil\n.example.com"]}, "route web: hosts[0]"),
        ({"hosts": ["a.example.com"], "health": {"path": "/h\n"}}, "route web: health.path"),
        ({"service_port": 8501}, "outside the service port range 10000-19999"),
        ({"service_port": 80}, "one of the router's own ports"),
        ({"name": "web\n", "hosts": ["a.example.com"]}, "app name"),
    ],
    ids=["host-newline", "path-newline", "port-of-consul", "port-of-the-router", "name-newline"],
)
def test_a_route_the_routers_would_skip_is_refused_before_anything_is_written(consul_agent, prefix, run, args, message):
    result = run(**{"name": "web", **args})
    assert result["failed"] and message in result["msg"], result["msg"]
    assert consul_agent.keys(prefix) == []


def test_a_younger_route_cannot_take_an_older_routes_host_or_port(consul_agent, prefix, run):
    assert run(name="shop", hosts=["shop.example.com"], service_port=10080)["changed"]
    taken = run(name="aaa-evil", hosts=["SHOP.example.com."])
    assert taken["failed"]
    assert "route aaa-evil: refused, it claims host shop.example.com (taken by route shop)" in taken["msg"]
    port = run(name="other", service_port=10080)
    assert port["failed"] and "service_port 10080 (taken by route shop)" in port["msg"]
    assert consul_agent.keys(prefix) == [f"{prefix}routes/shop"]
    # The owner may still change its own route.
    assert run(name="shop", hosts=["shop.example.com", "www.shop.example.com"], service_port=10080)["changed"]


def test_removal_and_a_bad_prefix(consul_agent, prefix, run):
    run(name="shop", hosts=["shop.example.com"])
    removed = run(name="shop", state="absent", diff=True)
    assert removed["changed"] and consul_agent.get(f"{prefix}routes/shop") is None
    assert removed["diff"]["after"] == {}
    assert not run(name="shop", state="absent")["changed"]
    for prefix_value in ("dockyard", "dock\nyard/", "dockyard/../", "%2e/"):
        bad = run(name="shop", hosts=["a.example.com"], prefix=prefix_value)
        assert bad["failed"] and bad["msg"].startswith("prefix: "), bad["msg"]
