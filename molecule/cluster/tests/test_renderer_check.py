"""Each router's renderer registers its health as the Consul check dockyard-renderer on its node, with the token the
consul role made for it (renderer-<router>), which may register checks on that node only. While an app is routed
(so that every renderer is healthy) the check passes on every router; a router whose renderer stops shows as
failing in Consul until the renderer is back."""

import json

import pytest
from cluster import NODES, consul_api, consul_token, lab_host, management_token, node_exec
from deploying import running_app
from support.waiting import wait_for

APP = "rendered"
SERVICE_PORT = 10099
CHECK = "dockyard-renderer"
# The renderer role's default check interval (10 s), and Consul's time to run the check and record it.
UPDATE = 30


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """An app every router routes: with nothing left to route, a renderer refuses the drop to none and is unhealthy."""
    with running_app(tmp_path_factory.mktemp("renderer-check"), APP, SERVICE_PORT, "c1") as workdir:
        yield workdir


def check_state(node: str) -> str:
    status, body = consul_api(lab_host("manager1"), f"health/node/{node}", management_token())
    assert status == 200, body
    found = [check["Status"] for check in json.loads(body) if check["CheckID"] == CHECK]
    return found[0] if found else "missing"


def test_every_routers_renderer_check_passes(app):
    for node in NODES:
        wait_for(lambda n=node: check_state(n) == "passing", UPDATE, 1, what=f"{node}'s {CHECK} check to pass")


def test_a_renderers_token_registers_checks_on_its_own_node_only():
    token = consul_token(f"renderer-{NODES[1]}")
    body = json.dumps({"ID": "dockyard-test", "Name": "dockyard-test", "TTL": "30s"})
    own = consul_api(lab_host(NODES[1]), "agent/check/register", token, "PUT", body)
    other = consul_api(lab_host(NODES[2]), "agent/check/register", token, "PUT", body)
    consul_api(lab_host(NODES[1]), "agent/check/deregister/dockyard-test", token, "PUT")
    assert own[0] == 200, own
    assert other[0] == 403, other


def test_a_stopped_renderer_shows_as_failing_in_consul_until_it_is_back(app):
    node = NODES[1]
    try:
        node_exec(node, "systemctl stop dockyard-renderer")
        wait_for(lambda: check_state(node) == "critical", UPDATE, 1, what=f"{node}'s check to fail")
    finally:
        node_exec(node, "systemctl start dockyard-renderer")
    wait_for(lambda: check_state(node) == "passing", UPDATE, 1, what=f"{node}'s check to pass again")
