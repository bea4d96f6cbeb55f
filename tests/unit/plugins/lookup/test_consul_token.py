# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lookup dockyard.platform.consul_token, through Ansible's own templating as a role default uses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultLib, VaultSecret
from ansible.template import Templar, trust_as_template
from ansible_collections.dockyard.platform.plugins.lookup.consul_token import TOKEN_NAME_GRAMMAR, token_file
from hypothesis import given
from hypothesis import strategies as st


def store_token(root: Path, name: str, secret: str, datacenter: str = "dc1", vault: VaultLib | None = None) -> Path:
    """A token file as the consul role writes it, under <root>/qa/consul/consul-<datacenter>/tokens/."""
    path = root / "qa" / "consul" / f"consul-{datacenter}" / "tokens" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"AccessorID": "a0000000-0000-4000-8000-000000000000", "SecretID": secret})
    path.write_bytes(vault.encrypt(text) if vault else text.encode())
    return path


def looked_up(expression: str, loader: DataLoader | None = None, **variables) -> str:
    trusted = {name: trust_as_template(value) if isinstance(value, str) else value for name, value in variables.items()}
    templar = Templar(loader=loader or DataLoader(), variables={"inventory_dir": "/srv/inventories/qa", **trusted})
    return templar.template(trust_as_template(expression))


def test_a_token_is_read_from_the_environment_s_consul_store(tmp_path):
    store_token(tmp_path, "registrator-node_1", "secret-1")
    expression = "{{ lookup('dockyard.platform.consul_token', 'registrator-' ~ node) }}"
    assert looked_up(expression, dockyard_secrets_root=str(tmp_path), node="node_1") == "secret-1"


def test_the_store_and_the_datacenter_follow_the_consul_role_s_variables(tmp_path):
    store_token(tmp_path, "deployer", "secret-2", datacenter="east")
    found = looked_up(
        "{{ lookup('dockyard.platform.consul_token', 'deployer') }}",
        consul_secrets_dir="{{ root }}/qa/consul",
        consul_datacenter="east",
        root=str(tmp_path),
    )
    assert found == "secret-2"


def test_a_vault_encrypted_store_is_decrypted(tmp_path):
    vault = VaultLib([("default", VaultSecret(b"vault password"))])
    path = store_token(tmp_path, "renderer", "secret-3", vault=vault)
    assert path.read_bytes().startswith(b"$ANSIBLE_VAULT")
    loader = DataLoader()
    loader.set_vault_secrets([("default", VaultSecret(b"vault password"))])
    expression = "{{ lookup('dockyard.platform.consul_token', 'renderer') }}"
    assert looked_up(expression, loader=loader, dockyard_secrets_root=str(tmp_path)) == "secret-3"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("deployer", None, "no Consul token 'deployer' in the consul role's store ("),
        ("deployer", "not json", "the Consul token 'deployer' in "),
        ("deployer", '{"SecretID": ""}', "holds no SecretID"),
        ("../management", None, "'../management' is not the name of a token the consul role makes"),
        ("", None, "'' is not the name of a token"),
    ],
)
def test_a_missing_or_broken_token_fails_naming_it_and_its_file(tmp_path, name, content, message):
    if content is not None:
        path = tmp_path / "qa" / "consul" / "consul-dc1" / "tokens" / f"{name}.json"
        path.parent.mkdir(parents=True)
        path.write_text(content)
    with pytest.raises(AnsibleError) as refused:
        looked_up(f"{{{{ lookup('dockyard.platform.consul_token', {name!r}) }}}}", dockyard_secrets_root=str(tmp_path))
    assert message in str(refused.value)
    if name == "deployer":
        assert str(tmp_path / "qa" / "consul" / "consul-dc1" / "tokens" / "deployer.json") in str(refused.value)


def test_a_datacenter_outside_the_grammar_is_refused(tmp_path):
    with pytest.raises(AnsibleError) as refused:
        looked_up(
            "{{ lookup('dockyard.platform.consul_token', 'deployer') }}",
            dockyard_secrets_root=str(tmp_path),
            consul_datacenter="../dc1",
        )
    assert "consul_datacenter is '../dc1'" in str(refused.value)


@given(st.text(max_size=140))
def test_every_accepted_name_stays_inside_the_tokens_directory(name):
    try:
        path = token_file("/store", "dc1", name)
    except ValueError:
        assert not TOKEN_NAME_GRAMMAR.fullmatch(name)
        return
    assert Path(path).parent == Path("/store/consul-dc1/tokens")
    assert Path(path).name == f"{name}.json"
