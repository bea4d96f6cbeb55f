"""dockyard.platform.consul_acl against a real Consul server with ACLs on (default deny), through a counting proxy.

Each test names its policies and tokens after itself, on the one shared server.
"""

import importlib
import json
import re
import urllib.error
import uuid

import pytest
from ansible.module_utils.testing import patch_module_args
from hypothesis import given, settings
from hypothesis import strategies as st
from support.consul_agent import MASTER_TOKEN
from support.counting_proxy import CountingProxy

consul_acl = importlib.import_module("ansible_collections.dockyard.platform.plugins.modules.consul_acl")
logic = importlib.import_module("ansible_collections.dockyard.platform.plugins.module_utils._consul_acl")


@pytest.fixture
def proxy(consul_acl_agent):
    counting = CountingProxy(consul_acl_agent.url)
    yield counting
    counting.close()


@pytest.fixture
def name():
    return f"t-{uuid.uuid4().hex[:8]}"


def run(capsys, proxy, policies=(), tokens=(), token=MASTER_TOKEN, check_mode=False, diff=False):
    args = {
        "address": proxy.address,
        "token": token,
        "policies": list(policies),
        "tokens": list(tokens),
        "_ansible_check_mode": check_mode,
        "_ansible_diff": diff,
    }
    with patch_module_args(args), pytest.raises(SystemExit):
        consul_acl.main()
    return json.loads(capsys.readouterr().out)


def policy(name, path="app/", access="read"):
    return {"name": name, "description": f"{name} reads {path}", "rules": {"key_prefix": {path: {"policy": access}}}}


def token(name, policies, secret=None):
    return {
        "accessor_id": str(uuid.uuid4()),
        "secret_id": secret or str(uuid.uuid4()),
        "description": f"dockyard {name}",
        "policies": policies,
    }


def status_of(agent, path, secret=MASTER_TOKEN):
    try:
        agent.request("GET", path, token=secret, raw=True)
    except urllib.error.HTTPError as error:
        return error.code
    return 200


def read_key(agent, key, secret):
    return status_of(agent, f"/v1/kv/{key}", secret)


def test_policies_and_tokens_are_created_and_a_second_run_sends_no_write(consul_acl_agent, proxy, name, capsys):
    agent = consul_acl_agent
    agent.put(f"{name}/key", "value")
    policies = [policy(name, f"{name}/"), policy(f"{name}-other", "elsewhere/")]
    tokens = [token(name, [name])]
    first = run(capsys, proxy, policies, tokens)
    assert first["changed"] is True
    assert (first["policies_created"], first["tokens_created"]) == ([name, f"{name}-other"], [f"dockyard {name}"])
    assert proxy.writes() == [("PUT", "/v1/acl/policy")] * 2 + [("PUT", "/v1/acl/token")]
    # The token works with the secret given, and only where its policy lets it.
    assert read_key(agent, f"{name}/key", tokens[0]["secret_id"]) == 200
    assert read_key(agent, "elsewhere/key", tokens[0]["secret_id"]) in (403, 404)

    proxy.requests.clear()
    second = run(capsys, proxy, policies, tokens)
    assert second["changed"] is False
    assert proxy.writes() == []
    assert len(proxy.requests) == 3  # one read per policy and token, in one module call


def test_changed_rules_and_token_policies_are_updated_in_place_keeping_the_secret(
    consul_acl_agent, proxy, name, capsys
):
    agent = consul_acl_agent
    agent.put(f"{name}/key", "value")
    mine = token(name, [name])
    run(capsys, proxy, [policy(name, "nothing/"), policy(f"{name}-b", f"{name}/")], [mine])
    assert read_key(agent, f"{name}/key", mine["secret_id"]) == 403

    proxy.requests.clear()
    changed = run(capsys, proxy, [policy(name, f"{name}/")], [{**mine, "policies": [name, f"{name}-b"]}], diff=True)
    assert (changed["policies_updated"], changed["tokens_updated"]) == ([name], [f"dockyard {name}"])
    assert [method for method, _path in proxy.writes()] == ["PUT", "PUT"]
    assert all(path.rsplit("/", 1)[1] for _method, path in proxy.writes())  # updates by ID, not new objects
    assert read_key(agent, f"{name}/key", mine["secret_id"]) == 200
    assert mine["secret_id"] not in json.dumps(changed)
    assert "nothing/" in changed["diff"]["before"] and f"{name}/" in changed["diff"]["after"]


def test_rules_given_as_json_text_in_another_layout_are_unchanged(consul_acl_agent, proxy, name, capsys):
    given_as_data = policy(name, f"{name}/")
    run(capsys, proxy, [given_as_data])
    as_text = {**given_as_data, "rules": json.dumps(given_as_data["rules"], indent=4)}
    assert run(capsys, proxy, [as_text])["changed"] is False


def test_check_mode_reports_and_writes_nothing(consul_acl_agent, proxy, name, capsys):
    result = run(capsys, proxy, [policy(name)], [token(name, [name])], check_mode=True)
    assert (result["changed"], result["policies_created"]) == (True, [name])
    assert proxy.writes() == []
    assert status_of(consul_acl_agent, f"/v1/acl/policy/name/{name}") in (403, 404)


def test_a_token_that_exists_with_another_secret_stops_before_anything_is_written(
    consul_acl_agent, proxy, name, capsys
):
    mine = token(name, [name])
    run(capsys, proxy, [policy(name)], [mine])
    proxy.requests.clear()
    replaced = {**mine, "secret_id": str(uuid.uuid4())}
    result = run(capsys, proxy, [policy(name, "changed/")], [replaced])
    assert result["failed"] is True
    assert (
        f"token 'dockyard {name}' (accessor {mine['accessor_id']}) exists in Consul with another secret"
        in (result["msg"])
    )
    assert replaced["secret_id"] not in json.dumps(result) and mine["secret_id"] not in json.dumps(result)
    assert proxy.writes() == []  # not even the changed policy


def test_a_token_without_acl_rights_is_refused_naming_the_option(consul_acl_agent, proxy, name, capsys):
    result = run(capsys, proxy, [policy(name)], token=str(uuid.uuid4()))
    assert result["failed"] is True
    assert result["status"] == 403
    assert "Consul refused the ACL token given in the token option" in result["msg"]


@pytest.mark.parametrize(
    ("policies", "tokens", "message"),
    [
        ([{"name": "bad name", "rules": "{}"}], [], r"policies\[0\]\.name: expected a policy name"),
        ([policy("a"), policy("a")], [], r"policies\[1\]\.name: policy a is given twice"),
        ([{"name": "a", "rules": "x" * 70000}], [], r"policies\[0\]\.rules: expected at most 65536"),
        ([{"name": "a", "rules": "key \x00"}], [], r"policies\[0\]\.rules: expected at most .* printable"),
        ([], [{**token("a", ["a"]), "secret_id": "not-a-uuid"}], r"tokens\[0\]\.secret_id: expected a lower-case UUID"),
        ([], [{**token("a", ["a"]), "policies": ["a/b"]}], r"tokens\[0\]\.policies: expected a policy name"),
    ],
)
def test_bad_input_is_refused_naming_the_field_before_any_request(proxy, capsys, policies, tokens, message):
    result = run(capsys, proxy, policies, tokens)
    assert result["failed"] is True
    assert re.search(message, result["msg"]), result["msg"]
    assert proxy.requests == []
    assert "not-a-uuid" not in result["msg"]


# Whatever text arrives as a description or rules, it is either refused with a message naming its field or sent to
# Consul as a JSON string: it never reaches the request as anything but data.
@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.one_of(st.text(max_size=80), st.dictionaries(st.text(max_size=8), st.text(max_size=8))))
def test_any_description_or_rules_parse_or_are_refused_by_field(description, rules):
    try:
        [parsed] = logic.parse_policies([{"name": "p", "description": description, "rules": rules}])
    except logic.AclError as error:
        assert str(error).startswith(("policies[0].description:", "policies[0].rules:")), error
    else:
        assert parsed.description == description
        assert json.loads(parsed.rules) == rules if isinstance(rules, dict) else parsed.rules == rules


def test_a_write_consul_acknowledges_but_does_not_keep_fails_naming_it(consul_acl_agent, proxy, name, capsys):
    proxy.swallow_writes = True
    result = run(capsys, proxy, [policy(name)])
    assert result["failed"] is True
    assert f"Consul acknowledged but does not hold the written {name}" in result["msg"], result["msg"]
