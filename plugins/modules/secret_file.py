#!/usr/bin/python
# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: secret_file
short_description: Keep a secret file on the controller, encrypted with ansible-vault when the run has a vault password
version_added: 0.1.0
description:
  - Writes a secret (a private key, a token, a password) to a file on the controller, the way an environment's
    directory keeps every secret (see P(dockyard.platform.environment_dir#lookup)) mode V(0600), in directories
    made V(0700).
  - When the run has a vault password (C(--vault-password-file), C(--vault-id), C(ANSIBLE_VAULT_PASSWORD_FILE) or
    Ansible's C(vault_identity_list)), the file is written encrypted with ansible-vault; without one it is written
    plain, as before.
  - A plain file found while the run has a vault password is encrypted in place, keeping its content, and the
    task says so in a warning.
  - An encrypted file is decrypted and compared, so a second run with the same content changes nothing. An
    encrypted file that the run cannot decrypt (no vault password, or not the one it was encrypted with) fails the
    task naming the file, and is never overwritten.
  - Without O(content), the task only brings an existing file to that state (encrypted when it can be, mode
    V(0600)) and reports whether it exists; a missing file stays missing.
  - Files ansible-vault encrypted are read by Ansible like plain ones (C(ansible.builtin.file) lookups,
    C(ansible.builtin.copy) with C(src)); community.crypto options that take a path to a private key do not
    decrypt, so give them the key's content (C(privatekey_content), C(ownca_privatekey_content)) from a lookup.
  - This is an action that runs on the controller only; it needs no connection to a host.
author:
  - Dockyard engineers (@dockyard)
attributes:
  check_mode:
    support: full
    description: Reads and decrypts the file, and reports what it would write, without writing.
  diff_mode:
    support: full
    description: Shows whether the file exists, is encrypted and its mode before and after; never its content.
  idempotent:
    support: full
    description: The file is rewritten only when its content, its encryption or its mode differs.
options:
  path:
    description:
      - The file on the controller; an absolute path, or one starting with C(~).
    type: str
    required: true
  content:
    description:
      - The secret the file holds, as text, written as it is (give the trailing newline you want).
      - Omit it to only encrypt an existing file in place and set its mode.
    type: str
  force:
    description:
      - V(false) keeps an existing file's content whatever O(content) says, so a secret generated for the first
        run is kept by every later one; only a missing file is written with O(content).
    type: bool
    default: true
  vault_id:
    description:
      - The vault id (one of the run's C(--vault-id)s) to encrypt new files with.
      - Defaults to the variable C(dockyard_secrets_vault_id), else to Ansible's C(vault_encrypt_identity)
        setting, else the first vault secret of the run. Naming an id the run does not have fails the task.
      - An existing encrypted file is kept as it is encrypted; C(ansible-vault rekey) changes its password.
    type: str
notes:
  - Tasks that pass a secret in O(content) should be C(no_log). The module never returns the content, and its
    failure messages name the file and the reason, never the secret.
  - The write goes through a temporary file in the same directory and a rename, so a reader never sees half a
    secret.
seealso:
  - name: Secrets of an environment
    description: Where each of the platform's secrets lives, and how to turn encryption on (docs/secrets.md).
    link: https://example.invalid/dockyard/platform/docs/secrets.md
  - name: Ansible Vault
    description: Encrypting content with Ansible Vault.
    link: https://docs.ansible.com/ansible/latest/vault_guide/index.html
"""

EXAMPLES = r"""
- name: Create the gossip key once, encrypted when the run has a vault password
  dockyard.platform.secret_file:
    path: "{{ lookup('dockyard.platform.environment_dir') }}/consul/consul-dc1/gossip.key"
    content: "{{ __new_gossip_key.stdout }}\n"
    force: false
  run_once: true
  no_log: true

- name: Make a private key without writing it in plain text
  community.crypto.openssl_privatekey_pipe:
    type: ECC
    curve: secp384r1
  register: __new_ca_key
  no_log: true

- name: Keep it in the environment's directory
  dockyard.platform.secret_file:
    path: "{{ pki_dir }}/ca.key"
    content: "{{ __new_ca_key.privatekey }}"
    force: false
  no_log: true

- name: Encrypt an existing secret in place when the run has a vault password
  dockyard.platform.secret_file:
    path: "{{ pki_dir }}/client-key.pem"
  register: __client_key
"""

RETURN = r"""
path:
  description: The file, as an absolute path.
  returned: success
  type: str
  sample: /home/ops/.dockyard/environments/qa/pki/ca.key
exists:
  description: Whether the file exists once the task is done (in check mode, would exist).
  returned: success
  type: bool
  sample: true
encrypted:
  description: Whether the file is encrypted with ansible-vault once the task is done (in check mode, would be).
  returned: success
  type: bool
  sample: true
actions:
  description: What the task did (in check mode, would do) to the file, in words; empty when nothing.
  returned: success
  type: list
  elements: str
  sample: ["encrypt it in place"]
"""
