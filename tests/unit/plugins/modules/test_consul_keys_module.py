"""dockyard.platform.consul_keys driven through main() (the run_module fixture), over the fake Consul.

tests/integration/test_consul_keys.py runs the same module against a real Consul agent.
"""

import importlib
import json

import pytest
import yaml

consul_keys = importlib.import_module("ansible_collections.dockyard.platform.plugins.modules.consul_keys")
render = importlib.import_module("ansible_collections.dockyard.platform.plugins.modules.render")
consul_util = importlib.import_module("ansible_collections.dockyard.platform.plugins.module_utils._consul")
fragment = importlib.import_module("ansible_collections.dockyard.platform.plugins.doc_fragments.consul")

PREFIX = "config/app/"


@pytest.fixture
def fake(fake_consul):
    for key, value in {PREFIX + "db/password": "old-pass", PREFIX + "replicas": "2", "other/key": "x"}.items():
        fake_consul.set(key, value)
    return fake_consul


@pytest.fixture
def run(run_module, fake):
    def run(_capsys, args, check_mode=False, diff=False):
        return run_module(consul_keys, {"address": fake.address, **args}, check_mode, diff)

    return run


def test_present_writes_in_one_transaction_and_reports(run, fake, capsys):
    result = run(capsys, {"prefix": "config/app", "data": {"replicas": 3, "features": {"a": True}}})
    assert result["changed"] is True
    assert result["added"] == [PREFIX + "features"]
    assert result["updated"] == [PREFIX + "replicas"]
    assert result["removed"] == []
    assert result["transactions"] == 1
    assert fake.kv[PREFIX + "features"][0] == b'{"a":true}'


def test_check_mode_with_diff_writes_nothing(run, fake, capsys):
    result = run(capsys, {"prefix": "config/app", "data": {"replicas": "3"}, "exclusive": True}, True, True)
    assert result["changed"] is True
    assert result["updated"] == [PREFIX + "replicas"]
    assert result["removed"] == [PREFIX + "db/password"]
    assert result["diff"]["before"][PREFIX + "replicas"] == "2"
    assert result["diff"]["after"] == {PREFIX + "replicas": "3"}
    assert fake.transactions == []


def test_secret_values_never_show(run, fake, capsys):
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
def test_bad_input_fails_before_any_write(run, fake, capsys, args, message):
    before = dict(fake.kv)
    result = run(capsys, args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert fake.transactions == []
    assert fake.kv == before


def test_absent_deletes_given_keys(run, fake, capsys):
    result = run(capsys, {"prefix": "config/app", "state": "absent", "keys": ["replicas", "missing"]})
    assert result["removed"] == [PREFIX + "replicas"]
    assert PREFIX + "replicas" not in fake.kv
    assert "other/key" in fake.kv


def test_connection_options_fall_back_to_consul_http_environment(run_module, fake, monkeypatch, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "consul.example:8501")
    monkeypatch.setenv("CONSUL_HTTP_SSL", "true")
    monkeypatch.setenv("CONSUL_HTTP_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("CONSUL_HTTP_SSL_VERIFY", "false")
    seen = {}

    def capture(params):
        seen["client"] = consul_util.client_from_params(params)
        return fake.client()

    monkeypatch.setattr(consul_keys, "client_from_params", capture)
    run_module(consul_keys, {"prefix": "p", "data": {"a": "1"}}, check_mode=True)
    client = seen["client"]
    assert client.settings.base_url == "https://consul.example:8501"
    assert client.token == "file-token"
    assert client.settings.verify is False


@pytest.mark.parametrize(
    ("address", "use_ssl", "url"),
    [
        ("127.0.0.1:8500", False, "http://127.0.0.1:8500"),
        ("127.0.0.1:8501", True, "https://127.0.0.1:8501"),
        ("http://consul:8500/", True, "http://consul:8500"),
        ("https://consul:8501", False, "https://consul:8501"),
        ("[::1]:8500", False, "http://[::1]:8500"),
    ],
)
def test_base_url(address, use_ssl, url):
    params = {option: None for option in consul_util.CONNECTION_ARGUMENT_SPEC}
    params.update(address=address, use_ssl=use_ssl, validate_certs=True, timeout=10)
    assert consul_util.settings_from_params(params).base_url == url


def test_a_refused_token_fails_naming_the_option_and_writes_nothing(run, fake, capsys):
    fake.token = "right"
    result = run(capsys, {"prefix": "config/app", "data": {"a": "1"}, "token": "wrong-value"})
    assert result["failed"] is True
    assert result["status"] == 403
    assert result["msg"].startswith("Consul refused the ACL token given in the token option")
    assert "wrong-value" not in json.dumps(result)
    assert fake.transactions == []


def _documented(module):
    """The module's options, the doc fragments it extends merged in as Ansible merges them."""
    documentation = yaml.safe_load(module.DOCUMENTATION)
    options = {}
    if "dockyard.platform.consul" in documentation.get("extends_documentation_fragment", []):
        options.update(yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)["options"])
    options.update(documentation["options"])
    return options


class _Caught(Exception):
    pass


def _spec(module, monkeypatch):
    """The argument spec main() builds, caught at AnsibleModule's door."""
    caught = {}

    def door(**kwargs):
        caught.update(kwargs["argument_spec"])
        raise _Caught

    for name in ("AnsibleModule", "_Module"):
        if hasattr(module, name):
            monkeypatch.setattr(module, name, door)
    with pytest.raises(_Caught):
        module.main()
    return caught


@pytest.mark.parametrize("module", [consul_keys, render], ids=["consul_keys", "render"])
def test_documentation_and_argument_spec_agree(module, monkeypatch):
    documented = _documented(module)
    spec = _spec(module, monkeypatch)
    assert set(documented) == set(spec)
    for name, option in spec.items():
        doc = documented[name]
        assert doc.get("type", "str") == option.get("type", "str"), name
        assert doc.get("default") == option.get("default"), name
        assert doc.get("choices") == option.get("choices"), name
        assert doc.get("elements") == option.get("elements"), name
        assert bool(doc.get("required")) == bool(option.get("required")), name
        assert doc.get("aliases", []) == option.get("aliases", []), name


def test_the_action_group_holds_every_module_of_the_fragment():
    import pathlib

    modules_dir = pathlib.Path(consul_keys.__file__).parent
    runtime = yaml.safe_load((modules_dir.parents[1] / "meta" / "runtime.yml").read_text())
    members = []
    for path in sorted(modules_dir.glob("*.py")):
        module = importlib.import_module(f"ansible_collections.dockyard.platform.plugins.modules.{path.stem}")
        documentation = yaml.safe_load(module.DOCUMENTATION)
        if "dockyard.platform.consul" in documentation.get("extends_documentation_fragment", []):
            members.append(path.stem)
            assert documentation["attributes"]["action_group"]["membership"] == ["dockyard.platform.consul"]
    assert runtime["action_groups"]["consul"] == members
    assert {"consul_keys", "render"} <= set(members)
    shared = yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)["options"]
    assert set(shared) == set(consul_util.CONNECTION_ARGUMENT_SPEC)
