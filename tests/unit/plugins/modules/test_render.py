"""dockyard.platform.render driven through main(), over a fake Consul HTTP client."""

import base64
import importlib
import json

import pytest
from ansible.module_utils.testing import patch_module_args

render = importlib.import_module("ansible_collections.dockyard.platform.plugins.modules.render")
consul = importlib.import_module("ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul")

KV = {"app/name": "shop", "app/backends/a": "10.0.0.1:80", "app/backends/b": "10.0.0.2:80"}
TEMPLATE = "name={{ key('app/name') }}\n{% for b in ls('app/backends') %}server {{ b.key }} {{ b.value }}\n{% endfor %}"


@pytest.fixture(autouse=True)
def fake_consul(monkeypatch):
    def get(self, path, params=None, timeout=None):
        key = path[len("/v1/kv/") :]
        matches = [(k, v) for k, v in KV.items() if (k.startswith(key) if params and "recurse" in params else k == key)]
        if not matches:
            return consul.Response(404, b"", 7)
        body = [{"Key": k, "Value": base64.b64encode(v.encode()).decode()} for k, v in matches]
        return consul.Response(200, json.dumps(body).encode(), 7)

    monkeypatch.setattr(consul.ConsulClient, "get", get)


def run(args, capsys, check_mode=False, diff=False):
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args), pytest.raises(SystemExit):
        render.main()
    return json.loads(capsys.readouterr().out)


def test_renders_then_changes_nothing(tmp_path, capsys):
    dest = tmp_path / "out.cfg"
    args = {"content": TEMPLATE, "dest": str(dest), "mode": "0640"}
    first = run(dict(args), capsys)
    assert first["changed"] is True
    assert dest.read_text() == "name=shop\nserver a 10.0.0.1:80\nserver b 10.0.0.2:80\n"
    assert dest.stat().st_mode & 0o777 == 0o640
    assert first["dependencies"] == ["key(app/name)", "prefix(app/backends/)"]
    second = run(dict(args), capsys)
    assert second["changed"] is False
    assert second["checksum"] == first["checksum"]


def test_check_mode_reports_the_diff_and_writes_nothing(tmp_path, capsys):
    dest = tmp_path / "out.cfg"
    dest.write_text("old\n")
    result = run({"content": "{{ key('app/name') }}\n", "dest": str(dest)}, capsys, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"] == "old\n"
    assert result["diff"]["after"] == "shop\n"
    assert dest.read_text() == "old\n"


@pytest.mark.parametrize(
    ("content", "validate", "message"),
    [
        ("{{ key('app/nope') }}", None, "missing key(s) in Consul: app/nope"),
        ("{{ nope }}", None, "the template failed: UndefinedError"),
        ("{% for %}", None, "syntax error on line 1"),
        ("{{ key('app/name') }}", "false %s", "validation failed"),
    ],
)
def test_failures_leave_the_file_alone(tmp_path, capsys, content, validate, message):
    dest = tmp_path / "out.cfg"
    dest.write_text("live\n")
    args = {"content": content, "dest": str(dest)}
    if validate:
        args["validate"] = validate
    result = run(args, capsys)
    assert result["failed"] is True
    assert message in result["msg"]
    assert dest.read_text() == "live\n"
    assert [path.name for path in tmp_path.iterdir()] == ["out.cfg"]


def test_src_and_content_are_mutually_exclusive(tmp_path, capsys):
    result = run({"content": "x", "src": "/x", "dest": str(tmp_path / "o")}, capsys)
    assert "mutually exclusive" in result["msg"]
