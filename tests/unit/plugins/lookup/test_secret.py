# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lookup dockyard.platform.secret, through Ansible's own templating as a role default uses it."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultLib, VaultSecret
from ansible.template import Templar, trust_as_template

PASSWORD = b"throwaway vault password"


def loader_with(*identities: str) -> DataLoader:
    loader = DataLoader()
    loader.set_vault_secrets([(identity, VaultSecret(PASSWORD)) for identity in identities])
    return loader


def looked_up(expression: str, loader: DataLoader | None = None, **variables) -> str:
    trusted = {name: trust_as_template(value) if isinstance(value, str) else value for name, value in variables.items()}
    templar = Templar(loader=loader or DataLoader(), variables=trusted)
    return templar.template(trust_as_template(expression))


DEFAULT = "{{ lookup('dockyard.platform.secret', secrets_dir ~ '/zookeeper-deployer.password') }}"


def test_a_missing_secret_is_made_once_and_read_back_after(tmp_path):
    first = looked_up(DEFAULT, secrets_dir=str(tmp_path / "zookeeper"))
    assert len(first) == 32 and set(first) <= set(string.ascii_letters + string.digits)
    path = tmp_path / "zookeeper" / "zookeeper-deployer.password"
    assert path.read_text() == first + "\n"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert looked_up(DEFAULT, secrets_dir=str(tmp_path / "zookeeper")) == first


def test_with_a_vault_password_the_new_secret_is_stored_encrypted(tmp_path):
    loader = loader_with("default")
    secret = looked_up(DEFAULT, loader=loader, secrets_dir=str(tmp_path))
    stored = (tmp_path / "zookeeper-deployer.password").read_bytes()
    assert stored.startswith(b"$ANSIBLE_VAULT")
    assert VaultLib([("default", VaultSecret(PASSWORD))]).decrypt(stored) == f"{secret}\n".encode()
    assert looked_up(DEFAULT, loader=loader, secrets_dir=str(tmp_path)) == secret


def test_the_vault_id_variable_chooses_the_encrypting_secret(tmp_path):
    looked_up(DEFAULT, loader=loader_with("dev", "prod"), secrets_dir=str(tmp_path), dockyard_secrets_vault_id="prod")
    assert (tmp_path / "zookeeper-deployer.password").read_bytes().startswith(b"$ANSIBLE_VAULT;1.2;AES256;prod\n")


def test_a_stored_plain_password_of_the_old_lookup_is_read_as_it_is(tmp_path):
    # ansible.builtin.password wrote the password and a newline.
    (tmp_path / "zookeeper-deployer.password").write_text("made-by-ansible-builtin-password\n")
    assert looked_up(DEFAULT, loader=loader_with("default"), secrets_dir=str(tmp_path)) == (
        "made-by-ansible-builtin-password"
    )


def test_length_and_chars_shape_a_new_secret(tmp_path):
    secret = looked_up(
        "{{ lookup('dockyard.platform.secret', path, length=24, chars=['digits']) }}",
        path=str(tmp_path / "registry" / "deploy.password"),
    )
    assert len(secret) == 24 and secret.isdigit()


def test_an_encrypted_secret_without_the_password_fails_naming_the_file_and_stays(tmp_path):
    path = tmp_path / "zookeeper-deployer.password"
    path.write_bytes(VaultLib([("default", VaultSecret(PASSWORD))]).encrypt(b"stored\n"))
    before = path.read_bytes()
    with pytest.raises(AnsibleError) as refused:
        looked_up(DEFAULT, secrets_dir=str(tmp_path))
    assert f"{path} is encrypted with ansible-vault, but this run has no vault password" in str(refused.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("{{ lookup('dockyard.platform.secret', 'relative/file') }}", "not an absolute path"),
        ("{{ lookup('dockyard.platform.secret', here ~ '/x', length=0) }}", "length is 0"),
        ("{{ lookup('dockyard.platform.secret', here ~ '/x', chars=['letters']) }}", "Invalid value ['letters']"),
    ],
)
def test_bad_input_fails_naming_the_option(tmp_path, expression, message):
    with pytest.raises(AnsibleError) as refused:
        looked_up(expression, here=str(tmp_path))
    assert message in str(refused.value)
    assert not Path(tmp_path / "x").exists()
