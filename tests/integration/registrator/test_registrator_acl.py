"""Must show: a node's registrator token (the consul role's per-node policy: write on
<prefix>instances/<node>/, read on the other nodes' instances, session write on its Consul agent's node) is all
the registrator needs; with it, node A writes under instances/A/ only: it can read but neither change, delete
nor lock node B's keys, nor write the old layout, nor create, renew or destroy node B's session. With a token
that may only read its instances, the registrator logs an error naming the key and keeps running.

One Consul agent serves the test: the registrator's sessions belong to that agent's node (as in the lab, where
each registrator talks to its own node's agent), and node B is a second node registered in the catalog with a
session of its own, created by the management token.
"""

import json
import time
import urllib.error
import uuid

import pytest
from registrator_helpers import app_labels, task_of, wait_for

INSTANCE = json.dumps({"addr": "192.0.2.10", "port": 1, "version": "1", "track": "stable"}).encode()


def make_token(agent, rules: dict) -> str:
    name = f"registrator-test-{uuid.uuid4().hex[:8]}"
    agent.request("PUT", "/v1/acl/policy", json.dumps({"Name": name, "Rules": json.dumps(rules)}).encode())
    token, _headers = agent.request("PUT", "/v1/acl/token", json.dumps({"Policies": [{"Name": name}]}).encode())
    return token["SecretID"]


def node_rules(prefix: str, node: str, agent_node: str, kv_policy: str = "write") -> dict:
    """As the consul role's registrator-<node> policy (roles/consul/vars/main.yml), with the key policy varied."""
    return {
        "key_prefix": {f"{prefix}instances/": {"policy": "read"}, f"{prefix}instances/{node}/": {"policy": kv_policy}},
        "session": {agent_node: {"policy": "write"}},
    }


def agent_node(agent) -> str:
    return agent.request("GET", "/v1/agent/self")[0]["Config"]["NodeName"]


def status(agent, method: str, path: str, token: str, body: bytes | None = None):
    """(HTTP status, decoded answer) of one request with the token."""
    try:
        answer, _headers = agent.request(method, path, body, token=token)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    return 200, answer


@pytest.fixture
def node_b(consul_acl_agent, names):
    """Another node (its name starts with node A's) with an instance held by its own session."""
    name = f"{names['node']}-b"
    consul_acl_agent.request(
        "PUT", "/v1/catalog/register", json.dumps({"Node": name, "Address": "192.0.2.20"}).encode()
    )
    body = {"Node": name, "Name": f"dockyard-registrator {name}", "TTL": "600s", "Behavior": "delete", "Checks": []}
    session = consul_acl_agent.request("PUT", "/v1/session/create", json.dumps(body).encode())[0]["ID"]
    key = f"{names['kv_prefix']}instances/{name}/web/t-b"
    assert consul_acl_agent.request("PUT", f"/v1/kv/{key}?acquire={session}", INSTANCE)[0] is True
    yield {"name": name, "session": session, "key": key}
    consul_acl_agent.request("PUT", f"/v1/session/destroy/{session}")
    consul_acl_agent.request("PUT", "/v1/catalog/deregister", json.dumps({"Node": name}).encode())


def test_the_nodes_token_is_enough(consul_acl_agent, registrator, containers, names):
    token = make_token(consul_acl_agent, node_rules(names["kv_prefix"], names["node"], agent_node(consul_acl_agent)))
    daemon, kv = registrator(consul_acl_agent, token=token)
    web = containers(labels=app_labels("web"))
    key = kv.key("web", task_of(web))
    wait_for(lambda: kv.entry(key), 10, what="registration with the node's token")
    # What the registrator role's "wait for the session" task reads with the same token.
    listed = status(consul_acl_agent, "GET", "/v1/session/list", token)[1]
    assert [entry["Name"] for entry in listed] == [f"dockyard-registrator {names['node']}"]
    assert daemon.stop() == 0
    assert kv.keys() == []
    assert token not in daemon.log(), "the token must never be logged"


def test_node_a_writes_its_own_instances_and_nothing_of_node_b(consul_acl_agent, names, node_b):
    prefix, node = names["kv_prefix"], names["node"]
    token = make_token(consul_acl_agent, node_rules(prefix, node, agent_node(consul_acl_agent)))
    own = f"{prefix}instances/{node}/web/t-a"

    # Its own prefix: a session of its node, an acquire, a read, a delete.
    created, answer = status(
        consul_acl_agent, "PUT", "/v1/session/create", token, b'{"TTL": "60s", "Behavior": "delete"}'
    )
    assert created == 200, answer
    session_a = answer["ID"]
    assert status(consul_acl_agent, "PUT", f"/v1/kv/{own}?acquire={session_a}", token, INSTANCE) == (200, True)
    assert status(consul_acl_agent, "GET", f"/v1/kv/{own}", token)[0] == 200

    b_key, b_index = node_b["key"], consul_acl_agent.request("GET", f"/v1/kv/{node_b['key']}")[0][0]["ModifyIndex"]
    denied = {
        "write B's key": ("PUT", f"/v1/kv/{b_key}", INSTANCE),
        "check-and-set B's key": ("PUT", f"/v1/kv/{b_key}?cas={b_index}", INSTANCE),
        "delete B's key": ("DELETE", f"/v1/kv/{b_key}", None),
        "delete B's prefix": ("DELETE", f"/v1/kv/{prefix}instances/{node_b['name']}/?recurse", None),
        "release B's key": ("PUT", f"/v1/kv/{b_key}?release={node_b['session']}", INSTANCE),
        "acquire under B with A's session": ("PUT", f"/v1/kv/{b_key}-2?acquire={session_a}", INSTANCE),
        "write the old layout": ("PUT", f"/v1/kv/{prefix}instances/web/{node}/t-old", INSTANCE),
        "write a route": ("PUT", f"/v1/kv/{prefix}routes/web", b"{}"),
        "destroy B's session": ("PUT", f"/v1/session/destroy/{node_b['session']}", None),
        "renew B's session": ("PUT", f"/v1/session/renew/{node_b['session']}", None),
        "create a session on B": ("PUT", "/v1/session/create", json.dumps({"Node": node_b["name"]}).encode()),
    }
    for what, (method, path, body) in denied.items():
        code, answer = status(consul_acl_agent, method, path, token, body)
        assert code == 403, f"{what}: expected 403, got {code} {answer}"

    # Every node's instances are readable (a restart for a config change waits for a replacement on any node).
    code, answer = status(consul_acl_agent, "GET", f"/v1/kv/{prefix}instances/?recurse", token)
    assert code == 200
    assert sorted(entry["Key"] for entry in answer) == sorted([own, b_key])
    # B's session is not even listed for A, and B's key and session are untouched.
    sessions = status(consul_acl_agent, "GET", "/v1/session/list", token)[1]
    assert node_b["session"] not in [entry["ID"] for entry in sessions]
    entry = consul_acl_agent.request("GET", f"/v1/kv/{b_key}")[0][0]
    assert (entry["Session"], entry["ModifyIndex"]) == (node_b["session"], b_index)
    assert consul_acl_agent.request("GET", f"/v1/session/info/{node_b['session']}")[0]
    assert consul_acl_agent.get(f"{b_key}-2") is None

    assert status(consul_acl_agent, "PUT", f"/v1/session/destroy/{session_a}", token)[0] == 200
    assert consul_acl_agent.get(own) is None


def test_read_only_token_logs_the_key_and_keeps_running(consul_acl_agent, registrator, containers, names):
    rules = node_rules(names["kv_prefix"], names["node"], agent_node(consul_acl_agent), kv_policy="read")
    token = make_token(consul_acl_agent, rules)
    daemon, kv = registrator(consul_acl_agent, token=token)
    web = containers(labels=app_labels("web"))
    key = kv.key("web", task_of(web))
    wait_for(lambda: daemon.log_lines("level=error", "cannot write instance", key), 10, what="an error naming the key")
    time.sleep(1)
    assert daemon.alive()
    assert kv.entry(key) is None
    assert "403" in daemon.log_lines("cannot write instance", key)[0]
