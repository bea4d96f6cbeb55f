# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lookup dockyard.platform.consul_token: a platform token's secret from the consul role's store."""

from __future__ import annotations

DOCUMENTATION = r"""
name: consul_token
version_added: 0.1.0
short_description: The secret of a Consul token the consul role made, read from the environment's store
description:
  - Returns the C(SecretID) of each named token from C(<secrets_dir>/consul-<datacenter>/tokens/<name>.json), the
    store where the role M(dockyard.platform.consul) keeps the tokens it makes (C(renderer), C(deployer),
    C(app-config-issuer), C(registrator-<node>), C(router-<node>), ...).
  - This is how the daemons and the playbooks find their own tokens, so an inventory does not repeat them.
  - A store encrypted with ansible-vault is read like any other file Ansible reads.
  - Fails naming the token and the file when the token is missing (the consul play has not run yet, or the
    name is not one the consul role makes) or the file holds no secret.
options:
  _terms:
    description: Token names, as the consul role names them.
    required: true
    type: list
    elements: str
  secrets_dir:
    description: The consul role's store, C(consul_secrets_dir); by default C(consul) in the environment's directory.
    type: str
    vars:
      - name: consul_secrets_dir
  datacenter:
    description: The Consul datacenter, C(consul_datacenter).
    type: str
    default: dc1
    vars:
      - name: consul_datacenter
"""

EXAMPLES = r"""
# A role's default: the renderer's own token, as the consul role made it.
# renderer_consul_token: "{{ lookup('dockyard.platform.consul_token', 'renderer') }}"
- name: Read the deployer's token for a module call
  ansible.builtin.set_fact:
    deployer_token: "{{ lookup('dockyard.platform.consul_token', 'deployer') }}"
  no_log: true
"""

RETURN = r"""
_raw:
  description: The secret of each named token, in the order of the names.
  type: list
  elements: str
"""

# validate-modules wants DOCUMENTATION, EXAMPLES and RETURN before the imports.
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402

from ansible.errors import AnsibleLookupError  # noqa: E402
from ansible.plugins.loader import lookup_loader  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402

# The names the consul role gives tokens: its own and registrator-<node>/router-<node>, whose node names are
# inventory host names. Nothing that could leave the tokens directory.
TOKEN_NAME_GRAMMAR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
DATACENTER_GRAMMAR = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class TokenStoreError(ValueError):
    """A token that cannot be read from the store, with a message naming it and the file."""


def token_file(store: str, datacenter: str, name: str) -> str:
    """The file of one token in the consul role's store; refused when a name could leave the tokens directory."""
    if not isinstance(datacenter, str) or not DATACENTER_GRAMMAR.fullmatch(datacenter):
        raise TokenStoreError(f"consul_datacenter is {datacenter!r}, not a Consul datacenter name")
    if not isinstance(name, str) or not TOKEN_NAME_GRAMMAR.fullmatch(name):
        raise TokenStoreError(f"{name!r} is not the name of a token the consul role makes")
    return os.path.join(store, f"consul-{datacenter}", "tokens", f"{name}.json")


def token_secret(text: str, name: str, path: str) -> str:
    """The SecretID of a token file's JSON."""
    try:
        secret = json.loads(text)["SecretID"]
    except (ValueError, KeyError, TypeError):
        secret = None
    if not isinstance(secret, str) or not secret:
        raise TokenStoreError(f"the Consul token {name!r} in {path} holds no SecretID")
    return secret


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        self.set_options(var_options=variables, direct=kwargs)
        store = self._templar.template(self.get_option("secrets_dir"))
        if store is None:
            environment = lookup_loader.get("dockyard.platform.environment_dir", self._loader, self._templar)
            store = os.path.join(environment.run([], variables)[0], "consul")
        datacenter = self._templar.template(self.get_option("datacenter"))
        secrets = []
        try:
            for name in terms:
                path = token_file(store, datacenter, name)
                if not os.path.isfile(path):
                    raise TokenStoreError(
                        f"no Consul token {name!r} in the consul role's store ({path}): run playbooks/site.yml, "
                        "whose consul play makes the platform's tokens, or set the token in the inventory"
                    )
                secrets.append(token_secret(self._loader.get_text_file_contents(path), name, path))
        except TokenStoreError as error:
            raise AnsibleLookupError(str(error)) from None
        return secrets
