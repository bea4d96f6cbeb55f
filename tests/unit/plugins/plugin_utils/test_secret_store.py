"""The controller side of a secret file, with real ansible-vault encryption and a throwaway password."""

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from ansible.parsing.vault import VaultLib, VaultSecret
from ansible_collections.dockyard.platform.plugins.module_utils._secret_file import SecretFileError
from ansible_collections.dockyard.platform.plugins.plugin_utils import _secret_store as store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PASSWORD = b"throwaway vault password"
ANSIBLE_VAULT = Path(sys.executable).parent / "ansible-vault"


def secrets(*identities, password=PASSWORD):
    return [(identity, VaultSecret(password)) for identity in identities or ("default",)]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_without_a_vault_password_a_secret_is_written_plain_0600_in_new_0700_directories(tmp_path):
    path = tmp_path / "env" / "pki" / "ca.key"
    store.write(str(path), b"key\n", store.Vault(None))
    assert path.read_bytes() == b"key\n" and mode(path) == 0o600
    assert mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700


def test_with_a_vault_password_a_secret_is_written_encrypted_and_read_back(tmp_path):
    path = tmp_path / "gossip.key"
    vault = store.Vault(secrets())
    store.write(str(path), b"gossip\n", vault)
    assert path.read_bytes().startswith(b"$ANSIBLE_VAULT;1.1;AES256\n")
    found = store.read(str(path), vault)
    assert found.content == b"gossip\n" and found.encrypted and found.mode == 0o600


def test_ansible_vault_itself_decrypts_what_was_written(tmp_path):
    path = tmp_path / "management.token"
    store.write(str(path), b"token\n", store.Vault(secrets()))
    (tmp_path / "password").write_bytes(PASSWORD)
    shown = subprocess.run(
        [str(ANSIBLE_VAULT), "view", "--vault-password-file", str(tmp_path / "password"), str(path)],
        capture_output=True,
        check=True,
    )
    assert shown.stdout == b"token\n"


def test_the_vault_id_named_by_the_variable_is_the_one_that_encrypts(tmp_path):
    path = tmp_path / "ca.key"
    loaded = secrets("dev") + secrets("prod", password=b"another throwaway password")
    vault = store.Vault(loaded, "prod")
    store.write(str(path), b"key\n", vault)
    assert path.read_bytes().startswith(b"$ANSIBLE_VAULT;1.2;AES256;prod\n")
    only_prod = VaultLib(secrets("prod", password=b"another throwaway password"))
    assert only_prod.decrypt(path.read_bytes()) == b"key\n"


def test_without_a_choice_the_first_vault_secret_encrypts():
    assert store.Vault(secrets("dev", "prod")).vault_id == "dev"


def test_a_vault_id_the_run_does_not_have_is_refused_naming_the_variable():
    with pytest.raises(SecretFileError, match=r"dockyard_secrets_vault_id is 'qa', .* \(it has: dev, prod\)"):
        store.Vault(secrets("dev", "prod"), "qa")
    with pytest.raises(SecretFileError, match="dockyard_secrets_vault_id is 'qa', but this run has no vault password"):
        store.Vault(None, "qa")


def test_an_encrypted_file_without_a_vault_password_fails_naming_it_and_stays(tmp_path):
    path = tmp_path / "ca.key"
    store.write(str(path), b"key\n", store.Vault(secrets()))
    before = path.read_bytes()
    with pytest.raises(SecretFileError) as caught:
        store.read(str(path), store.Vault(None))
    assert str(caught.value).startswith(f"{path} is encrypted with ansible-vault, but this run has no vault password")
    assert "--vault-password-file" in str(caught.value)
    assert path.read_bytes() == before


def test_an_encrypted_file_the_run_cannot_open_fails_naming_its_vault_id(tmp_path):
    path = tmp_path / "ca.key"
    store.write(str(path), b"key\n", store.Vault(secrets("prod"), "prod"))
    with pytest.raises(SecretFileError) as caught:
        store.read(str(path), store.Vault(secrets("prod", password=b"not the password")))
    assert str(caught.value).startswith(f"{path} is encrypted with ansible-vault (vault id prod), and no vault")


def test_a_missing_file_is_found_missing_and_a_directory_is_refused(tmp_path):
    assert not store.read(str(tmp_path / "absent"), store.Vault(None)).exists
    with pytest.raises(SecretFileError, match="is a directory"):
        store.read(str(tmp_path), store.Vault(None))


def test_vault_text_as_content_is_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "token"
    vaulttext = VaultLib(secrets()).encrypt(b"token")
    for vault in (store.Vault(None), store.Vault(secrets())):
        with pytest.raises(SecretFileError, match="vault-encrypted text already"):
            store.write(str(path), vaulttext, vault)
    assert list(tmp_path.iterdir()) == []


def test_create_does_not_replace_a_file_another_writer_made(tmp_path):
    path = tmp_path / "deployer.password"
    assert store.create(str(path), b"first\n", store.Vault(None))
    assert not store.create(str(path), b"second\n", store.Vault(None))
    assert path.read_bytes() == b"first\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deployer.password"]


def test_of_many_writers_racing_to_create_a_file_exactly_one_wins(tmp_path):
    path = tmp_path / "new" / "deployer.password"
    won = []
    vault = store.Vault(secrets())

    def race(number):
        if store.create(str(path), f"secret {number}\n".encode(), vault):
            won.append(number)

    racers = [threading.Thread(target=race, args=(number,)) for number in range(8)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert len(won) == 1
    assert store.read(str(path), vault).content == f"secret {won[0]}\n".encode()
    assert os.listdir(path.parent) == ["deployer.password"]


def test_a_write_that_cannot_happen_fails_naming_the_file(tmp_path):
    (tmp_path / "pki").write_text("a file where the directory should be\n")
    with pytest.raises(SecretFileError, match=f"cannot write {tmp_path / 'pki' / 'ca.key'}: Not a directory"):
        store.write(str(tmp_path / "pki" / "ca.key"), b"key\n", store.Vault(None))


def test_set_mode_makes_a_file_0600(tmp_path):
    path = tmp_path / "ca.key"
    path.write_bytes(b"key\n")
    path.chmod(0o644)
    store.set_mode(str(path))
    assert mode(path) == 0o600


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.binary(max_size=200).filter(lambda data: not data.startswith(b"$ANSIBLE_VAULT")),
    encrypted=st.booleans(),
)
def test_any_content_round_trips_through_the_store(tmp_path, content, encrypted):
    path = tmp_path / "round-trip"
    vault = store.Vault(secrets() if encrypted else None)
    store.write(str(path), content, vault)
    found = store.read(str(path), vault)
    assert found.content == content and found.encrypted == encrypted and found.mode == 0o600
