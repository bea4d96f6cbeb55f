"""dockyard.platform.consul_keys against a real Consul agent on loopback.

Most tests drive the module's main() in this process (so a test can hook the moment between the module's read and
its write) and point it at a small counting HTTP proxy in front of Consul, so "no write requests" is counted on the
wire. One test runs the module through ansible-playbook by its FQCN.
"""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from support.consul_agent import MASTER_TOKEN
from support.counting_proxy import CountingProxy

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".cache" / "collections"
consul_keys = importlib.import_module("ansible_collections.dockyard.platform.plugins.modules.consul_keys")
logic = importlib.import_module("ansible_collections.dockyard.platform.plugins.module_utils._consul_keys")


@pytest.fixture
def proxy(consul_agent):
    counting = CountingProxy(consul_agent.url)
    yield counting
    counting.close()


@pytest.fixture
def prefix(request, consul_agent):
    name = f"it/{request.node.name.replace('[', '-').replace(']', '')}"
    consul_agent.delete_tree(name)
    return name


def run(capsys, args, check_mode=False, diff=False):
    args = {**args, "_ansible_check_mode": check_mode, "_ansible_diff": diff}
    with patch_module_args(args), pytest.raises(SystemExit):
        consul_keys.main()
    return json.loads(capsys.readouterr().out)


def tree(agent, prefix):
    return {key: agent.get(key).decode() for key in agent.keys(prefix + "/")}


def test_1000_keys_seed_in_one_task_and_a_second_run_sends_no_write(consul_agent, proxy, prefix, capsys):
    data = {f"svc{i // 100}/key{i:04d}": f"value-{i}" for i in range(1000)}
    first = run(capsys, {"prefix": prefix, "data": data, "address": proxy.address})
    assert first["changed"] is True
    assert len(first["added"]) == 1000
    assert first["transactions"] == 16  # ceil(1000 / 64)
    assert proxy.writes() == [("PUT", "/v1/txn")] * 16
    assert tree(consul_agent, prefix) == {f"{prefix}/{key}": value for key, value in data.items()}

    proxy.requests.clear()
    second = run(capsys, {"prefix": prefix, "data": data, "address": proxy.address})
    assert second["changed"] is False
    assert (second["added"], second["updated"], second["removed"]) == ([], [], [])
    assert proxy.writes() == []
    assert [method for method, _path in proxy.requests] == ["GET"]


def test_a_changed_value_is_written_and_json_values_compare_by_meaning(consul_agent, proxy, prefix, capsys):
    consul_agent.put(f"{prefix}/same", "1")
    consul_agent.put(f"{prefix}/doc", '{ "b": [1, 2],\n  "a": "x" }')
    consul_agent.put(f"{prefix}/old", "before")
    data = {"same": 1, "doc": {"a": "x", "b": [1, 2]}, "old": "after"}
    result = run(capsys, {"prefix": prefix, "data": data, "address": proxy.address}, diff=True)
    assert result["updated"] == [f"{prefix}/old"]
    assert result["diff"] == {"before": {f"{prefix}/old": "before"}, "after": {f"{prefix}/old": "after"}}
    assert consul_agent.get(f"{prefix}/old") == b"after"
    assert len(proxy.writes()) == 1


def test_check_mode_reports_and_writes_nothing(consul_agent, proxy, prefix, capsys):
    consul_agent.put(f"{prefix}/a", "1")
    result = run(capsys, {"prefix": prefix, "data": {"a": "2", "b": "3"}, "address": proxy.address}, True, True)
    assert (result["added"], result["updated"]) == ([f"{prefix}/b"], [f"{prefix}/a"])
    assert result["diff"]["after"] == {f"{prefix}/a": "2", f"{prefix}/b": "3"}
    assert proxy.writes() == []
    assert tree(consul_agent, prefix) == {f"{prefix}/a": "1"}


def test_exclusive_removes_exactly_the_keys_outside_the_desired_set(consul_agent, prefix, capsys):
    for key in ("keep", "stale", "deep/stale", "deep/keep"):
        consul_agent.put(f"{prefix}/{key}", "old")
    neighbours = {f"{prefix}x/k": "a", f"{prefix}-other/k": "b", f"{prefix}": "c"}
    for key, value in neighbours.items():
        consul_agent.put(key, value)
    args = {"prefix": prefix, "data": {"keep": "old", "deep/keep": "new"}, "exclusive": True}
    result = run(capsys, {**args, "address": consul_agent.address})
    assert result["removed"] == [f"{prefix}/deep/stale", f"{prefix}/stale"]
    assert result["updated"] == [f"{prefix}/deep/keep"]
    assert tree(consul_agent, prefix) == {f"{prefix}/keep": "old", f"{prefix}/deep/keep": "new"}
    for key, value in neighbours.items():
        assert consul_agent.get(key) == value.encode(), key
    assert run(capsys, {**args, "address": consul_agent.address})["changed"] is False


def test_a_directory_of_files_seeds_keys(consul_agent, prefix, capsys, tmp_path):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "host").write_text("db1.internal")
    (tmp_path / "motd").write_text("hello\n")
    result = run(
        capsys, {"prefix": prefix, "src": str(tmp_path), "data": {"replicas": 3}, "address": consul_agent.address}
    )
    assert result["added"] == [f"{prefix}/db/host", f"{prefix}/motd", f"{prefix}/replicas"]
    assert tree(consul_agent, prefix) == {
        f"{prefix}/db/host": "db1.internal",
        f"{prefix}/motd": "hello\n",
        f"{prefix}/replicas": "3",
    }


def test_state_absent_deletes_the_given_keys_only(consul_agent, prefix, capsys):
    for key in ("a", "b", "c"):
        consul_agent.put(f"{prefix}/{key}", key)
    result = run(
        capsys, {"prefix": prefix, "state": "absent", "keys": ["a", "c", "never"], "address": consul_agent.address}
    )
    assert result["removed"] == [f"{prefix}/a", f"{prefix}/c"]
    assert tree(consul_agent, prefix) == {f"{prefix}/b": "b"}


def test_a_concurrent_change_between_read_and_write_is_detected_and_retried(
    consul_agent, proxy, prefix, capsys, monkeypatch
):
    consul_agent.put(f"{prefix}/a", "old")
    writes_by_hook = []

    def another_writer_changes_a_after_our_read(self, attempt, changes):
        if attempt == 0:
            consul_agent.put(f"{prefix}/a", "theirs")
            writes_by_hook.append(attempt)

    monkeypatch.setattr(logic.KeySeeder, "between_read_and_write", another_writer_changes_a_after_our_read)
    result = run(capsys, {"prefix": prefix, "data": {"a": "ours", "b": "new"}, "address": proxy.address}, diff=True)
    assert writes_by_hook == [0]
    assert result["conflicts"] == [f"{prefix}/a"]
    assert result["diff"]["before"] == {f"{prefix}/a": "theirs"}
    assert tree(consul_agent, prefix) == {f"{prefix}/a": "ours", f"{prefix}/b": "new"}
    # read, refused transaction, read again, transaction
    assert [method for method, _path in proxy.requests] == ["GET", "PUT", "GET", "PUT"]


def test_a_persisting_conflict_fails_naming_the_key_with_nothing_written(consul_agent, prefix, capsys, monkeypatch):
    consul_agent.put(f"{prefix}/a", "old")

    def another_writer_changes_a_after_every_read(self, attempt, changes):
        consul_agent.put(f"{prefix}/a", f"theirs-{attempt}")

    monkeypatch.setattr(logic.KeySeeder, "between_read_and_write", another_writer_changes_a_after_every_read)
    args = {"prefix": prefix, "data": {"a": "ours", "b": "new"}, "retries": 2, "address": consul_agent.address}
    result = run(capsys, args)
    assert result["failed"] is True
    assert f"{prefix}/a" in result["msg"]
    assert "3 times" in result["msg"]
    assert result["keys"] == [f"{prefix}/a"]
    assert tree(consul_agent, prefix) == {f"{prefix}/a": "theirs-2"}  # b, in the same transactions, was not written


@pytest.mark.parametrize(
    ("data", "extra", "named"),
    [
        ({"ok": "1", "a/../../etc": "x"}, {}, "'a/../../etc'"),
        ({"ok": "1", "/root": "x"}, {}, "'/root'"),
        ({"ok": "1", "huge": "x" * (512 * 1024 + 1)}, {}, "'huge'"),
        ({"ok": "1", "nested": {"a": 1}}, {"value_format": "string"}, "'nested'"),
    ],
    ids=["dotdot", "leading-slash", "over-size-limit", "non-scalar"],
)
def test_bad_input_fails_before_any_write_naming_the_key(consul_agent, proxy, prefix, capsys, data, extra, named):
    consul_agent.put(f"{prefix}/ok", "0")
    result = run(capsys, {"prefix": prefix, "data": data, "address": proxy.address, **extra})
    assert result["failed"] is True
    assert named in result["msg"]
    assert proxy.requests == []
    assert tree(consul_agent, prefix) == {f"{prefix}/ok": "0"}


def test_a_missing_token_fails_naming_the_keys_and_writes_nothing(consul_acl_agent, prefix, capsys):
    consul_acl_agent.delete_tree(prefix)
    args = {"prefix": prefix, "data": {"a": "1", "b": "2"}, "address": consul_acl_agent.address}
    result = run(capsys, args)
    assert result["failed"] is True
    assert f"{prefix}/a" in result["msg"]
    assert f"{prefix}/b" in result["msg"]
    assert "token" in result["msg"]
    assert consul_acl_agent.keys(prefix + "/") == []

    granted = run(capsys, {**args, "token": MASTER_TOKEN})
    assert granted["added"] == [f"{prefix}/a", f"{prefix}/b"]
    assert run(capsys, {**args, "token": MASTER_TOKEN})["changed"] is False


def test_a_symlink_out_of_src_fails_naming_it_before_any_request(consul_agent, proxy, prefix, capsys, tmp_path):
    src = tmp_path / "config"
    src.mkdir()
    (src / "motd").write_text("hello\n")
    secret = tmp_path / "deploy-key"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (src / "key").symlink_to(secret)
    result = run(capsys, {"prefix": prefix, "src": str(src), "address": proxy.address})
    assert result["failed"] is True
    assert f"{src}/key is a symbolic link to {secret}, outside src" in result["msg"]
    assert "PRIVATE KEY" not in json.dumps(result)
    assert proxy.requests == []
    assert consul_agent.keys(prefix + "/") == []


@pytest.mark.parametrize("given", ["token", "token_file"])
def test_a_refused_token_fails_naming_the_token_option_and_not_its_value(
    consul_acl_agent, prefix, capsys, tmp_path, monkeypatch, given
):
    for variable in ("CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE"):
        monkeypatch.delenv(variable, raising=False)
    consul_acl_agent.put(f"{prefix}/a", "0")
    bad = "11111111-2222-4333-8444-555555555555"
    args = {"prefix": prefix, "data": {"a": "1"}, "address": consul_acl_agent.address}
    if given == "token":
        args["token"] = bad
    else:
        (tmp_path / "token").write_text(bad + "\n")
        args["token_file"] = str(tmp_path / "token")
    result = run(capsys, args)
    assert result["failed"] is True
    assert result["status"] == 403
    assert f"Consul refused the ACL token given in the {given} option" in result["msg"]
    assert "HTTP 403" in result["msg"]
    assert bad not in json.dumps(result)
    assert consul_acl_agent.get(f"{prefix}/a") == b"0"


def test_through_ansible_playbook_with_environment_fallback_diff_and_secrets(consul_acl_agent, prefix, tmp_path):
    consul_acl_agent.delete_tree(prefix)
    playbook = tmp_path / "seed.yml"
    playbook.write_text(
        json.dumps(
            [
                {
                    "name": "Seed",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Seed the keys",
                            "dockyard.platform.consul_keys": {
                                "prefix": prefix,
                                "data": {"url": "https://shop", "db/password": "s3cr3t-Pa55", "limits": {"cpu": 2}},
                                "secret_keys": ["db/password"],
                            },
                        }
                    ],
                }
            ]
        )
    )
    env = {**consul_acl_agent.environment(), "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_NOCOLOR": "1"}
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    command = ["ansible-playbook", "-i", "localhost,", "-c", "local", "--diff", "-vvv", str(playbook)]
    command[1:1] = ["-e", f"ansible_python_interpreter={sys.executable}"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "changed=1" in first.stdout
    assert "s3cr3t-Pa55" not in first.stdout + first.stderr
    assert consul_acl_agent.get(f"{prefix}/db/password") == b"s3cr3t-Pa55"
    assert consul_acl_agent.get(f"{prefix}/limits") == b'{"cpu":2}'

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "changed=0" in second.stdout
    assert "s3cr3t-Pa55" not in second.stdout + second.stderr
