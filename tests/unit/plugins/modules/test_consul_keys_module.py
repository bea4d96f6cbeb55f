"""dockyard.platform.consul_keys driven through main() (the community.hashi_vault pattern), over a fake Consul.

The fake stands in for the HTTP client only; tests/integration/test_consul_keys.py runs the same module against a
real Consul agent.
"""

import base64
import importlib
import json

import pytest
from ansible.module_utils.testing import patch_module_args

consul_keys = importlib.import_module("ansible_collections.dockyard.platform.plugins.modules.consul_keys")
consul_util = importlib.import_module("ansible_collections.dockyard.platform.plugins.module_utils._consul")

PREFIX = "config/app/"


class FakeClient:
    def __init__(self, data=None):
        self.kv = {key: (value.encode(), 5) for key, value in (data or {}).items()}
        self.transactions = []

    def kv_read_tree(self, prefix):
        return [
            {"Key": key, "Value": base64.b64encode(raw).decode(), "ModifyIndex": index}
            for key, (raw, index) in self.kv.items()
            if key.startswith(prefix)
        ]

    def txn(self, operations):
        self.transactions.append(operations)
        for operation in operations:
            kv = operation["KV"]
            if kv["Verb"] == "cas":
                self.kv[kv["Key"]] = (base64.b64decode(kv["Value"]), 6)
            else:
                self.kv.pop(kv["Key"], None)
        return True, [], []


@pytest.fixture
def fake(monkeypatch):
    client = FakeClient({PREFIX + "db/password": "old-pass", PREFIX + "replicas": "2", "other/key": "x"})
    monkeypatch.setattr(consul_keys, "client_from_params", lambda params: client)
    return client


def run(capsys, args, check_mode=False, diff=False):
    args = {**args, "_ansible_check_mode": check_mode, "_ansible_diff": diff}
    with patch_module_args(args), pytest.raises(SystemExit):
        consul_keys.main()
    return json.loads(capsys.readouterr().out)


def test_present_writes_in_one_transaction_and_reports(fake, capsys):
    result = run(capsys, {"prefix": "config/app", "data": {"replicas": 3, "features": {"a": True}}})
    assert result["changed"] is True
    assert result["added"] == [PREFIX + "features"]
    assert result["updated"] == [PREFIX + "replicas"]
    assert result["removed"] == []
    assert result["transactions"] == 1
    assert fake.kv[PREFIX + "features"][0] == b'{"a":true}'


def test_check_mode_with_diff_writes_nothing(fake, capsys):
    result = run(capsys, {"prefix": "config/app", "data": {"replicas": "3"}, "exclusive": True}, True, True)
    assert result["changed"] is True
    assert result["updated"] == [PREFIX + "replicas"]
    assert result["removed"] == [PREFIX + "db/password"]
    assert result["diff"]["before"][PREFIX + "replicas"] == "2"
    assert result["diff"]["after"] == {PREFIX + "replicas": "3"}
    assert fake.transactions == []


def test_secret_values_never_show(fake, capsys):
    args = {"prefix": "config/app", "data": {"db/password": "new-pass-123"}, "secret_keys": ["db/*"]}
    result = run(capsys, args, diff=True)
    text = json.dumps(result)
    assert result["updated"] == [PREFIX + "db/password"]
    assert "new-pass-123" not in text
    assert "old-pass" not in text
    assert result["diff"]["before"][PREFIX + "db/password"] == "********"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"prefix": "config/app", "data": {"../escape": "x"}}, "'../escape'"),
        ({"prefix": "config/app", "data": {"/abs": "x"}}, "'/abs'"),
        ({"prefix": "config/app", "data": {"big": "x" * 600_000}}, "'big'"),
        ({"prefix": "config/app", "data": {"m": {"a": 1}}, "value_format": "string"}, "'m'"),
        ({"prefix": "config/app", "data": {"n": None}}, "'n'"),
        ({"prefix": "config/app", "state": "absent", "keys": ["a/../b"]}, "'a/../b'"),
        ({"prefix": "/config", "data": {"a": "1"}}, "prefix"),
        ({"prefix": "config/app", "data": {"a": "1"}, "keys": ["a"]}, "mutually exclusive"),
        ({"prefix": "config/app"}, "state is present but any of the following are missing: data, src"),
        ({"prefix": "config/app", "state": "absent", "data": {"a": "1"}, "exclusive": True}, "exclusive"),
        ({"prefix": "config/app", "data": {"a": "1"}, "state": "gone"}, "value of state must be one of"),
        ({"prefix": "config/app", "data": {"a": "1"}, "retries": -1}, "retries must be 0 or more"),
    ],
)
def test_bad_input_fails_before_any_write(fake, capsys, args, message):
    before = dict(fake.kv)
    result = run(capsys, args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert fake.transactions == []
    assert fake.kv == before


def test_absent_deletes_given_keys(fake, capsys):
    result = run(capsys, {"prefix": "config/app", "state": "absent", "keys": ["replicas", "missing"]})
    assert result["removed"] == [PREFIX + "replicas"]
    assert PREFIX + "replicas" not in fake.kv
    assert "other/key" in fake.kv


def test_connection_options_fall_back_to_consul_http_environment(monkeypatch, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "consul.example:8501")
    monkeypatch.setenv("CONSUL_HTTP_SSL", "true")
    monkeypatch.setenv("CONSUL_HTTP_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("CONSUL_HTTP_SSL_VERIFY", "false")
    seen = {}

    def capture(params):
        seen["client"] = consul_util.client_from_params(params)
        return FakeClient()

    monkeypatch.setattr(consul_keys, "client_from_params", capture)
    with patch_module_args({"prefix": "p", "data": {"a": "1"}, "_ansible_check_mode": True}), pytest.raises(SystemExit):
        consul_keys.main()
    client = seen["client"]
    assert client.url == "https://consul.example:8501"
    assert client.token == "file-token"
    assert client.validate_certs is False


@pytest.mark.parametrize(
    ("address", "use_ssl", "url"),
    [
        ("127.0.0.1:8500", False, "http://127.0.0.1:8500"),
        ("127.0.0.1:8501", True, "https://127.0.0.1:8501"),
        ("http://consul:8500/", True, "http://consul:8500"),
        ("https://consul:8501", False, "https://consul:8501"),
    ],
)
def test_base_url(address, use_ssl, url):
    assert consul_util.base_url(address, use_ssl) == url


def test_documentation_and_argument_spec_agree():
    import yaml

    documented = yaml.safe_load(consul_keys.DOCUMENTATION)["options"]
    spec = consul_keys.argument_spec()
    assert set(documented) == set(spec)
    for name, option in spec.items():
        doc = documented[name]
        assert doc.get("type", "str") == option.get("type", "str"), name
        assert doc.get("default") == option.get("default"), name
        assert doc.get("choices") == option.get("choices"), name
        assert doc.get("elements") == option.get("elements"), name
        assert bool(doc.get("required")) == bool(option.get("required")), name
