"""Must show: AppTokens makes, reuses, updates and removes an app's configuration policy and token in a real
Consul with ACLs (default deny); the token reads its app's prefixes and nothing else, and writes nothing; a
token that may not write ACLs gets a ConsulError that says so.
"""

import json
import re
import urllib.error
import uuid

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.appconfig import layout
from ansible_collections.dockyard.platform.plugins.module_utils.appconfig.tokens import AppTokens, policy_rules
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul import (
    ConsulClient,
    ConsulError,
    ConsulSettings,
)
from support.consul_agent import MASTER_TOKEN

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def client_of(agent, token: str) -> ConsulClient:
    return ConsulClient(ConsulSettings(address=agent.address, token=token, names={"token": "consul_token"}))


def status_of(agent, method: str, path: str, token: str, body: bytes | None = None) -> int:
    """The HTTP status Consul answers to one request made with token."""
    try:
        agent.request(method, path, body, token=token)
    except urllib.error.HTTPError as error:
        return error.code
    return 200


def make_token(agent, rules: dict) -> str:
    name = f"tokens-test-{uuid.uuid4().hex[:8]}"
    agent.request("PUT", "/v1/acl/policy", json.dumps({"Name": name, "Rules": json.dumps(rules)}).encode())
    token, _headers = agent.request("PUT", "/v1/acl/token", json.dumps({"Policies": [{"Name": name}]}).encode())
    return token["SecretID"]


def policy_named(agent, name: str) -> dict | None:
    try:
        policy, _headers = agent.request("GET", f"/v1/acl/policy/name/{name}")
    except urllib.error.HTTPError as error:
        if error.code in (403, 404):
            return None
        raise
    return policy


def tokens_described(agent, name: str) -> list:
    found, _headers = agent.request("GET", "/v1/acl/tokens")
    return [token for token in found if token.get("Description") == name]


def delete_acls(agent, name: str) -> None:
    """Deletes the tokens and the policy named name, without AppTokens (whose removal is under test)."""
    for token in tokens_described(agent, name):
        agent.request("DELETE", f"/v1/acl/token/{token['AccessorID']}")
    policy = policy_named(agent, name)
    if policy is not None:
        agent.request("DELETE", f"/v1/acl/policy/{policy['ID']}")


@pytest.fixture
def app(consul_acl_agent):
    """A name of the test's own (the ACL agent is shared by the session), its KV folders seeded, and the
    master's AppTokens; what the test made is removed after it."""
    name = f"shop{uuid.uuid4().hex[:8]}"
    for key in ("greeting", "db/host"):
        consul_acl_agent.put(f"config/qa/{name}/{key}", f"{key} of {name}")
    consul_acl_agent.put(f"config/qa/other-{name}/secret", "not for the app")
    yield name, AppTokens(client_of(consul_acl_agent, MASTER_TOKEN))
    for environment in ("qa", None):
        delete_acls(consul_acl_agent, layout.app_policy_name(name, environment))
    consul_acl_agent.delete_tree(f"config/qa/{name}/")
    consul_acl_agent.delete_tree(f"config/qa/other-{name}/")


def test_ensure_makes_the_policy_and_the_token_then_reuses_them(consul_acl_agent, app):
    name, tokens = app
    prefixes = [f"config/qa/{name}/"]
    secret, changed = tokens.ensure(name, "qa", prefixes)
    assert changed and UUID.fullmatch(secret)
    policy = policy_named(consul_acl_agent, f"dockyard-app-config-qa-{name}")
    assert policy["Rules"] == policy_rules(prefixes)
    assert json.loads(policy["Rules"]) == {"key_prefix": {f"config/qa/{name}/": {"policy": "read"}}}
    (token,) = tokens_described(consul_acl_agent, layout.app_policy_name(name, "qa"))
    assert [linked["ID"] for linked in token["Policies"]] == [policy["ID"]]

    assert tokens.ensure(name, "qa", prefixes) == (secret, False)
    assert tokens.ensure(name, "qa", list(reversed(prefixes * 2))) == (secret, False)
    assert len(tokens_described(consul_acl_agent, layout.app_policy_name(name, "qa"))) == 1


def test_new_prefixes_update_the_policy_and_keep_the_token(consul_acl_agent, app):
    name, tokens = app
    secret, _changed = tokens.ensure(name, "qa", [f"config/qa/{name}/"])
    wider = [f"config/qa/{name}/", f"config/qa/other-{name}/"]
    assert tokens.ensure(name, "qa", wider) == (secret, True)
    assert policy_named(consul_acl_agent, f"dockyard-app-config-qa-{name}")["Rules"] == policy_rules(wider)
    assert status_of(consul_acl_agent, "GET", f"/v1/kv/config/qa/other-{name}/secret", secret) == 200
    assert tokens.ensure(name, "qa", wider) == (secret, False)


def test_the_token_reads_its_prefix_only_and_writes_nothing(consul_acl_agent, app):
    name, tokens = app
    secret, _changed = tokens.ensure(name, "qa", [f"config/qa/{name}/"])
    reader = client_of(consul_acl_agent, secret)
    assert (
        reader.request("GET", f"/v1/kv/config/qa/{name}/greeting", {"raw": ""}).body == f"greeting of {name}".encode()
    )
    listed = reader.request("GET", f"/v1/kv/config/qa/{name}/", {"recurse": ""}).json()
    assert sorted(entry["Key"] for entry in listed) == [f"config/qa/{name}/db/host", f"config/qa/{name}/greeting"]
    for path in (f"/v1/kv/config/qa/other-{name}/secret", "/v1/kv/dockyard/routes/shop", "/v1/acl/policies"):
        assert status_of(consul_acl_agent, "GET", path, secret) == 403, path
    assert status_of(consul_acl_agent, "PUT", f"/v1/kv/config/qa/{name}/greeting", secret, b"changed") == 403
    assert status_of(consul_acl_agent, "DELETE", f"/v1/kv/config/qa/{name}/greeting", secret) == 403
    with pytest.raises(ConsulError) as refused:
        reader.request("GET", f"/v1/kv/config/qa/other-{name}/secret")
    assert refused.value.status == 403
    assert consul_acl_agent.get(f"config/qa/{name}/greeting") == f"greeting of {name}".encode()


def test_remove_deletes_the_token_and_the_policy(consul_acl_agent, app):
    name, tokens = app
    secret, _changed = tokens.ensure(name, "qa", [f"config/qa/{name}/"])
    assert tokens.remove(name, "qa") is True
    assert policy_named(consul_acl_agent, f"dockyard-app-config-qa-{name}") is None
    assert tokens_described(consul_acl_agent, layout.app_policy_name(name, "qa")) == []
    with pytest.raises(ConsulError) as refused:
        client_of(consul_acl_agent, secret).request("GET", f"/v1/kv/config/qa/{name}/greeting")
    assert refused.value.status == 403 and "ACL not found" in refused.value.body
    assert tokens.remove(name, "qa") is False


def test_the_environment_names_the_policy_and_keeps_apps_apart(consul_acl_agent, app):
    name, tokens = app
    in_qa, _changed = tokens.ensure(name, "qa", [f"config/qa/{name}/"])
    plain, changed = tokens.ensure(name, None, [f"config/qa/{name}/"])
    assert changed and plain != in_qa
    assert policy_named(consul_acl_agent, f"dockyard-app-config-{name}") is not None
    assert tokens.remove(name, "qa") is True
    assert status_of(consul_acl_agent, "GET", f"/v1/kv/config/qa/{name}/greeting", plain) == 200


def test_a_token_without_acl_write_gets_a_consul_error_naming_the_refusal(consul_acl_agent, app):
    name, _tokens = app
    weak = make_token(consul_acl_agent, {"key_prefix": {"": {"policy": "write"}}})
    with pytest.raises(ConsulError) as refused:
        AppTokens(client_of(consul_acl_agent, weak)).ensure(name, "qa", [f"config/qa/{name}/"])
    assert refused.value.status == 403
    assert "Consul refused the ACL token given in consul_token" in str(refused.value)
    assert "/v1/acl/" in str(refused.value) and weak not in str(refused.value)
    assert policy_named(consul_acl_agent, f"dockyard-app-config-qa-{name}") is None
    with pytest.raises(ConsulError, match="Consul refused the ACL token"):
        AppTokens(client_of(consul_acl_agent, weak)).remove(name, "qa")


def test_a_token_that_only_reads_acls_never_passes_for_the_apps_secret(consul_acl_agent, app):
    """Consul shows a token's SecretID as "<hidden>" to a reader without acl:write: ensure() must refuse rather
    than hand that text out as the app's token (the definition would then carry it to every node)."""
    name, tokens = app
    tokens.ensure(name, "qa", [f"config/qa/{name}/"])
    reader = make_token(consul_acl_agent, {"acl": "read"})
    try:
        secret, changed = AppTokens(client_of(consul_acl_agent, reader)).ensure(name, "qa", [f"config/qa/{name}/"])
    except ConsulError as error:
        assert "acl:write" in str(error)
    else:
        assert UUID.fullmatch(secret), f"ensure() returned {secret!r} (changed {changed}) as the app's token"
