"""Must show: the registrator's token (write on <prefix>instances/, session write) is all it needs; with a token
that may only read the instances, it logs an error naming the key and keeps running."""

import json
import time
import uuid

from registrator_helpers import app_labels, wait_for


def make_token(agent, rules: dict) -> str:
    name = f"registrator-test-{uuid.uuid4().hex[:8]}"
    agent.request("PUT", "/v1/acl/policy", json.dumps({"Name": name, "Rules": json.dumps(rules)}).encode())
    token, _headers = agent.request("PUT", "/v1/acl/token", json.dumps({"Policies": [{"Name": name}]}).encode())
    return token["SecretID"]


def rules(prefix: str, kv_policy: str) -> dict:
    # As the consul role's registrator policy, with the key policy varied.
    return {
        "key_prefix": {f"{prefix}instances/": {"policy": kv_policy}},
        "session_prefix": {"": {"policy": "write"}},
        "node_prefix": {"": {"policy": "read"}},
    }


def test_registrator_token_is_enough(consul_acl_agent, registrator, containers, names):
    token = make_token(consul_acl_agent, rules(names["kv_prefix"], "write"))
    daemon, kv = registrator(consul_acl_agent, token=token)
    web = containers(labels=app_labels("web"))
    wait_for(lambda: kv.entry(kv.key("web", web.id)), 10, what="registration with the registrator's token")
    assert daemon.stop() == 0
    assert kv.keys() == []
    assert token not in daemon.log(), "the token must never be logged"


def test_read_only_token_logs_the_key_and_keeps_running(consul_acl_agent, registrator, containers, names):
    token = make_token(consul_acl_agent, rules(names["kv_prefix"], "read"))
    daemon, kv = registrator(consul_acl_agent, token=token)
    web = containers(labels=app_labels("web"))
    key = kv.key("web", web.id)
    wait_for(lambda: daemon.log_lines("level=error", "cannot write instance", key), 10, what="an error naming the key")
    time.sleep(1)
    assert daemon.alive()
    assert kv.entry(key) is None
    assert "403" in daemon.log_lines("cannot write instance", key)[0]
