# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lookup dockyard.platform.secret: a generated password, made once and kept encrypted on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
name: secret
version_added: 0.1.0
short_description: A password generated once and kept in a file on the controller, vault-encrypted when it can be
description:
  - Returns the secret kept in each file named; a file that does not exist yet is created first with a new random
    secret of O(length) characters from O(chars), mode V(0600) in directories made V(0700).
  - When the run has a vault password (C(--vault-password-file), C(--vault-id), C(ANSIBLE_VAULT_PASSWORD_FILE)),
    the new file is encrypted with ansible-vault, and an encrypted file is decrypted to be read. An existing plain
    file is read as it is; the first play of C(playbooks/site.yml) encrypts it in place
    (M(dockyard.platform.secret_file)).
  - This is C(ansible.builtin.password) for an environment's directory (P(dockyard.platform.environment_dir#lookup)),
    where that lookup would write its files in plain text and read an encrypted one as its ciphertext.
  - Fails naming the file when it is encrypted and the run has no vault password that opens it.
  - Like every lookup, it also runs in check mode; a missing file is created then too.
  - Two hosts that look up the same missing file at once get the same secret; the file is created once, and the
    loser of the race reads what the winner wrote.
options:
  _terms:
    description: The files, as absolute paths (or starting with C(~)) on the controller.
    required: true
    type: list
    elements: str
  length:
    description: The length of a new secret, from 1 to 1024.
    type: int
    default: 32
  chars:
    description:
      - The character classes a new secret is drawn from.
    type: list
    elements: str
    choices: [ascii_letters, ascii_lowercase, ascii_uppercase, digits, hexdigits, punctuation]
    default: [ascii_letters, digits]
  vault_id:
    description:
      - The vault id to encrypt a new file with, as for M(dockyard.platform.secret_file).
    type: str
    vars:
      - name: dockyard_secrets_vault_id
"""

EXAMPLES = r"""
# A role's default: the ZooKeeper deployer's password, made on the first run.
# zookeeper_deployer_password: >-
#   {{ lookup('dockyard.platform.secret', zookeeper_secrets_dir ~ '/zookeeper-deployer.password') }}
- name: Use the lab registry's password
  ansible.builtin.set_fact:
    registry_password: >-
      {{ lookup('dockyard.platform.secret', lookup('dockyard.platform.environment_dir') ~ '/registry/deploy.password',
                length=24) }}
  no_log: true
"""

RETURN = r"""
_raw:
  description: The secret of each file, without a trailing newline, in the order of the files.
  type: list
  elements: str
"""

# validate-modules wants DOCUMENTATION, EXAMPLES and RETURN before the imports.
from ansible.errors import AnsibleLookupError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402
from ansible_collections.dockyard.platform.plugins.module_utils._secret_file import (  # noqa: E402
    SecretFileError,
    check_path,
    generate,
)
from ansible_collections.dockyard.platform.plugins.plugin_utils import _secret_store as store  # noqa: E402


def text_of(path: str, content: bytes) -> str:
    try:
        return content.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise SecretFileError(f"{path} does not hold UTF-8 text") from None


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables or {}, direct=kwargs)
        length = self.get_option("length")
        chars = self.get_option("chars")
        secrets = []
        try:
            vault = store.Vault(self._loader._vault.secrets, self._templar.template(self.get_option("vault_id")))
            for term in terms:
                path = check_path(term)
                found = store.read(path, vault)
                if not found.exists:
                    new = generate(length, chars)
                    if store.create(path, f"{new}\n".encode(), vault):
                        secrets.append(new)
                        continue
                    found = store.read(path, vault)
                secrets.append(text_of(path, found.content))
        except SecretFileError as error:
            raise AnsibleLookupError(str(error)) from None
        return secrets
