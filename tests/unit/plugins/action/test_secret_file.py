"""The action dockyard.platform.secret_file, run as a task would run it, with a throwaway vault password."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from ansible.errors import AnsibleActionFail
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultLib, VaultSecret
from ansible.template import Templar
from ansible_collections.dockyard.platform.plugins.action.secret_file import ActionModule

PASSWORD = b"throwaway vault password"
SECRET = "s3cret-never-shown"


def run(args, vault_ids=(), check_mode=False, diff=False, task_vars=None):
    """The action's result for one task with these arguments, in a run with these vault ids loaded."""
    loader = DataLoader()
    loader.set_vault_secrets([(identity, VaultSecret(PASSWORD)) for identity in vault_ids])
    task = SimpleNamespace(args=args, check_mode=check_mode, diff=diff, async_val=0, action="secret_file")
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir=None))
    action = ActionModule(task, connection, None, loader, Templar(loader=loader))
    return action.run(task_vars=task_vars or {})


def vault(*identities):
    return VaultLib([(identity, VaultSecret(PASSWORD)) for identity in identities or ("default",)])


def test_a_new_secret_is_written_encrypted_and_a_second_run_changes_nothing(tmp_path):
    path = tmp_path / "env" / "consul" / "gossip.key"
    first = run({"path": str(path), "content": SECRET + "\n"}, vault_ids=["default"])
    assert first["changed"] and first["actions"] == ["create it encrypted"]
    assert first["encrypted"] and first["exists"] and first["path"] == str(path)
    stored = path.read_bytes()
    assert stored.startswith(b"$ANSIBLE_VAULT") and vault().decrypt(stored) == (SECRET + "\n").encode()
    second = run({"path": str(path), "content": SECRET + "\n"}, vault_ids=["default"])
    assert not second["changed"] and second["actions"] == []
    assert path.read_bytes() == stored


def test_without_a_vault_password_the_secret_is_written_plain(tmp_path):
    path = tmp_path / "gossip.key"
    result = run({"path": str(path), "content": SECRET})
    assert result["changed"] and not result["encrypted"]
    assert path.read_text() == SECRET


def test_a_plain_secret_is_encrypted_in_place_and_the_run_says_so(tmp_path):
    path = tmp_path / "ca.key"
    path.write_text(SECRET)
    path.chmod(0o644)
    result = run({"path": str(path)}, vault_ids=["default"])
    assert result["changed"] and result["encrypted"] and result["actions"] == ["encrypt it in place"]
    said = f"Encrypted {path} in place with ansible-vault (vault id default): it was plain text."
    assert result["warnings"] == [said]
    assert vault().decrypt(path.read_bytes()) == SECRET.encode()
    assert path.stat().st_mode & 0o777 == 0o600


def test_an_encrypted_secret_without_the_password_fails_and_nothing_changes(tmp_path):
    path = tmp_path / "management.token"
    path.write_bytes(vault().encrypt(SECRET))
    before = path.read_bytes()
    result = run({"path": str(path), "content": "a new token\n"})
    assert result["failed"] and not result.get("changed")
    assert result["msg"].startswith(f"{path} is encrypted with ansible-vault, but this run has no vault password")
    assert path.read_bytes() == before


def test_force_false_keeps_the_first_secret(tmp_path):
    path = tmp_path / "tokens" / "deployer.json"
    run({"path": str(path), "content": SECRET, "force": False}, vault_ids=["default"])
    again = run({"path": str(path), "content": "another random token", "force": False}, vault_ids=["default"])
    assert not again["changed"]
    assert vault().decrypt(path.read_bytes()) == SECRET.encode()


def test_new_content_replaces_the_old_one(tmp_path):
    path = tmp_path / "swarm.unlock-key"
    run({"path": str(path), "content": "old key\n"}, vault_ids=["default"])
    result = run({"path": str(path), "content": "new key\n"}, vault_ids=["default"])
    assert result["changed"] and result["actions"] == ["replace its content"]
    assert vault().decrypt(path.read_bytes()) == b"new key\n"


def test_check_mode_reports_and_writes_nothing(tmp_path):
    plain = tmp_path / "ca.key"
    plain.write_text(SECRET)
    new = tmp_path / "new" / "gossip.key"
    encrypting = run({"path": str(plain)}, vault_ids=["default"], check_mode=True)
    creating = run({"path": str(new), "content": SECRET}, vault_ids=["default"], check_mode=True)
    assert encrypting["changed"] and encrypting["encrypted"]
    said = f"Would encrypt {plain} in place with ansible-vault (vault id default): it was plain text."
    assert encrypting["warnings"] == [said]
    assert creating["changed"] and creating["exists"]
    assert plain.read_text() == SECRET
    assert not new.parent.exists()


def test_the_diff_shows_the_file_s_state_and_never_its_content(tmp_path):
    path = tmp_path / "ca.key"
    path.write_text("old secret")
    path.chmod(0o640)
    result = run({"path": str(path), "content": SECRET}, vault_ids=["default"], diff=True)
    assert result["diff"]["before"] == "content: (hidden)\nencrypted: no\nmode: 0640\n"
    assert result["diff"]["after"] == "content: (hidden, changed)\nencrypted: yes\nmode: 0600\n"
    assert SECRET not in json.dumps(result) and "old secret" not in json.dumps(result)


def test_the_variable_names_the_vault_id_that_encrypts(tmp_path):
    path = tmp_path / "ca.key"
    result = run(
        {"path": str(path), "content": SECRET},
        vault_ids=["dev", "prod"],
        task_vars={"dockyard_secrets_vault_id": "prod"},
    )
    assert not result.get("failed"), result.get("msg")
    assert path.read_bytes().startswith(b"$ANSIBLE_VAULT;1.2;AES256;prod\n")


def test_without_content_a_missing_file_stays_missing(tmp_path):
    result = run({"path": str(tmp_path / "management.token")}, vault_ids=["default"])
    assert not result["changed"] and not result["exists"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"path": "relative/ca.key"}, "not an absolute path"),
        ({"path": "/tmp/ca.key", "vault_id": "nope"}, "dockyard_secrets_vault_id is 'nope'"),
    ],
)
def test_bad_input_fails_naming_the_field(args, message):
    result = run(args, vault_ids=["default"])
    assert result["failed"] and message in result["msg"]


def test_an_option_it_does_not_know_is_refused():
    with pytest.raises(AnsibleActionFail, match="mode"):
        run({"path": "/tmp/ca.key", "mode": "0644"})


def test_the_result_never_carries_the_secret(tmp_path):
    for vault_ids in ([], ["default"]):
        result = run({"path": str(tmp_path / f"s{len(vault_ids)}"), "content": SECRET}, vault_ids=vault_ids, diff=True)
        assert SECRET not in json.dumps(result)
        assert Path(result["path"]).exists()
