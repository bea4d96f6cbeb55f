"""dockyard.platform.render driven through main() (the run_module fixture), over the fake Consul."""

import hashlib
import importlib
import json
import os

import pytest

render = importlib.import_module("ansible_collections.dockyard.platform.plugins.modules.render")

KV = {
    "app/name": "shop",
    "app/backends/a": "10.0.0.1:80",
    "app/backends/b": "10.0.0.2:80",
    "app/db/user": "shop",
    "app/db/password": "s3cr3t-Pa55",
}
TEMPLATE = "name={{ key('app/name') }}\n{% for b in ls('app/backends') %}server {{ b.key }} {{ b.value }}\n{% endfor %}"


@pytest.fixture(autouse=True)
def consul(fake_consul):
    for key, value in KV.items():
        fake_consul.set(key, value)
    return fake_consul


@pytest.fixture
def run(run_module, consul):
    """Runs the module against the fake Consul (unless the test gives an address)."""

    def run(args, check_mode=False, diff=False):
        return run_module(render, {"address": consul.address, **args}, check_mode, diff)

    return run


def test_renders_then_changes_nothing(run, tmp_path):
    dest = tmp_path / "out.cfg"
    args = {"content": TEMPLATE, "dest": str(dest), "mode": "0640"}
    first = run(dict(args))
    assert first["changed"] is True
    assert dest.read_text() == "name=shop\nserver a 10.0.0.1:80\nserver b 10.0.0.2:80\n"
    assert dest.stat().st_mode & 0o777 == 0o640
    assert first["dependencies"] == ["key(app/name)", "prefix(app/backends/)"]
    second = run(dict(args))
    assert second["changed"] is False
    assert second["checksum"] == first["checksum"]


def test_check_mode_reports_the_diff_and_writes_nothing(run, tmp_path):
    dest = tmp_path / "out.cfg"
    dest.write_text("old\n")
    result = run({"content": "{{ key('app/name') }}\n", "dest": str(dest)}, check_mode=True, diff=True)
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
def test_failures_leave_the_file_alone(run, tmp_path, content, validate, message):
    dest = tmp_path / "out.cfg"
    dest.write_text("live\n")
    args = {"content": content, "dest": str(dest)}
    if validate:
        args["validate"] = validate
    result = run(args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert dest.read_text() == "live\n"
    assert [path.name for path in tmp_path.iterdir()] == ["out.cfg"]


def test_src_and_content_are_mutually_exclusive(run, tmp_path):
    result = run({"content": "x", "src": "/x", "dest": str(tmp_path / "o")})
    assert "mutually exclusive" in result["msg"]


@pytest.mark.parametrize(
    ("option", "environment", "named"),
    [
        ("ca_path", None, "ca_path"),
        ("client_cert", None, "client_cert"),
        ("client_key", None, "client_key"),
        ("ca_path", "CONSUL_CACERT", "ca_path (from CONSUL_CACERT)"),
    ],
)
def test_a_missing_tls_file_fails_naming_the_option(run, tmp_path, monkeypatch, option, environment, named):
    for variable in ("CONSUL_CACERT", "CONSUL_CLIENT_CERT", "CONSUL_CLIENT_KEY"):
        monkeypatch.delenv(variable, raising=False)
    present = tmp_path / "present.pem"
    present.write_text("x")
    missing = tmp_path / "missing.pem"
    dest = tmp_path / "out.cfg"
    args = {"content": "{{ key('app/name') }}", "dest": str(dest), "consul_scheme": "https"}
    if option != "ca_path":
        args.update(client_cert=str(present), client_key=str(present))
    if environment:
        monkeypatch.setenv(environment, str(missing))
    else:
        args[option] = str(missing)
    result = run(args)
    assert result["failed"] is True
    assert result["msg"] == f"{named}: cannot read {missing}: No such file or directory"
    assert [path.name for path in tmp_path.iterdir()] == ["present.pem"]


def test_tls_files_that_are_no_certificates_fail_naming_the_options(run, tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    args = {"content": "x", "dest": str(tmp_path / "out"), "consul_scheme": "https", "ca_path": str(garbage)}
    result = run(args)
    assert result["failed"] is True
    assert result["msg"].startswith("cannot load the TLS files of ca_path: ")
    assert not (tmp_path / "out").exists()


SECRET_TEMPLATE = "user={{ key('app/db/user') }}\npassword={{ key('app/db/password') }}\n"


@pytest.mark.parametrize("patterns", [["app/db/password"], ["app/db/*"], ["*"]])
def test_the_diff_of_a_template_reading_a_secret_key_shows_no_text(run, tmp_path, patterns):
    dest = tmp_path / "settings.env"
    dest.write_text("user=shop\npassword=old-Pa55word\n")
    args = {"content": SECRET_TEMPLATE, "dest": str(dest), "secret_keys": patterns}
    result = run(args, check_mode=True, diff=True)
    text = json.dumps(result)
    assert "s3cr3t-Pa55" not in text
    assert "old-Pa55word" not in text
    assert result["changed"] is True
    new = hashlib.sha1(b"user=shop\npassword=s3cr3t-Pa55\n").hexdigest()
    old = hashlib.sha1(b"user=shop\npassword=old-Pa55word\n").hexdigest()
    assert result["diff"]["after"].endswith(f"sha1 {new}\n")
    assert result["diff"]["before"].endswith(f"sha1 {old}\n")
    assert "app/db/password" in result["diff"]["after"]
    assert dest.read_text() == "user=shop\npassword=old-Pa55word\n"


def test_secret_values_read_through_a_folder_are_masked_in_validate_output(run, tmp_path):
    dest = tmp_path / "settings.env"
    template = "{% for item in tree('app/db') %}{{ item.key }}={{ item.value }}\n{% endfor %}"
    args = {
        "content": template,
        "dest": str(dest),
        "secret_keys": ["app/db/pass*"],
        "validate": "sh -c 'cat %s; exit 1'",
    }
    result = run(args, diff=True)
    assert result["failed"] is True
    assert "password=********" in result["stdout"]
    assert "s3cr3t-Pa55" not in json.dumps(result)
    assert not dest.exists()


def test_without_secret_keys_the_diff_shows_the_text(run, tmp_path):
    result = run({"content": SECRET_TEMPLATE, "dest": str(tmp_path / "o")}, check_mode=True, diff=True)
    assert result["diff"]["after"] == "user=shop\npassword=s3cr3t-Pa55\n"


@pytest.mark.parametrize("mode", [0o600, "0600", "600", "u=rw,go="])
def test_a_new_file_is_created_with_the_mode_asked(run, tmp_path, monkeypatch, mode):
    dest = tmp_path / "new" / "secret.env"
    modes_at_commit = []
    commit = render.renderer_files.commit

    def recording_commit(candidate, destination):
        modes_at_commit.append(os.stat(candidate).st_mode & 0o7777)
        commit(candidate, destination)

    monkeypatch.setattr(render.renderer_files, "commit", recording_commit)
    result = run({"content": SECRET_TEMPLATE, "dest": str(dest), "mode": mode})
    assert result["changed"] is True
    assert modes_at_commit == [0o600]
    assert dest.stat().st_mode & 0o7777 == 0o600
    again = run({"content": SECRET_TEMPLATE, "dest": str(dest), "mode": mode})
    assert again["changed"] is False


@pytest.mark.parametrize("mode", ["u=banana", "0999", [1], True, 0o10000])
def test_a_bad_mode_fails_naming_mode_and_writes_nothing(run, tmp_path, mode):
    result = run({"content": "x", "dest": str(tmp_path / "o"), "mode": mode})
    assert result["failed"] is True
    assert result["msg"].startswith("mode must be")
    assert list(tmp_path.iterdir()) == []


def test_the_deprecated_option_names_still_work_and_warn(run_module, consul, tmp_path):
    dest = tmp_path / "out"
    args = {"content": "{{ key('app/name') }}", "dest": str(dest), "consul_address": consul.address}
    result = run_module(render, {**args, "consul_scheme": "http"})
    assert result["changed"] is True
    assert dest.read_text() == "shop"
    assert "warnings" not in result
    deprecated = json.dumps(result["deprecations"])
    assert "consul_address" in deprecated
    assert "consul_scheme" in deprecated


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("http://user:pw@127.0.0.1:8500", "address: credentials in the address are refused"),
        ("127.0.0.1:8500/v1/kv", "address: a path in the address is refused"),
        ("ftp://127.0.0.1:21", "address: the scheme must be http or https"),
    ],
)
def test_a_bad_address_fails_naming_the_option_before_any_request(run, consul, tmp_path, address, message):
    result = run({"content": "{{ key('app/name') }}", "dest": str(tmp_path / "out"), "address": address})
    assert result["failed"] is True
    assert result["msg"].startswith(message)
    assert "pw" not in result["msg"]
    assert consul.requests == []
    assert list(tmp_path.iterdir()) == []


def test_a_refused_token_is_named_by_its_option_never_by_value(run, consul, tmp_path):
    consul.token = "the-right-one"
    result = run({"content": "{{ key('app/name') }}", "dest": str(tmp_path / "out"), "token": "wrong-token-value"})
    assert result["failed"] is True
    assert result["msg"].startswith("Consul refused the ACL token given in the token option")
    assert "wrong-token-value" not in json.dumps(result)
    granted = run({"content": "{{ key('app/name') }}", "dest": str(tmp_path / "out"), "token": "the-right-one"})
    assert granted["changed"] is True
