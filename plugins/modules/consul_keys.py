#!/usr/bin/python
# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: consul_keys
short_description: Seed configuration keys into Consul KV atomically and idempotently
version_added: 0.1.0
description:
  - Writes a set of keys under one O(prefix) of Consul's KV store, from a mapping (O(data)), from a directory of files
    (O(src)), or both.
  - Reads the prefix once, writes only what differs, and sends every write through Consul's transaction API in as few
    transactions as Consul allows (64 operations and O(txn_max_req_len) bytes each).
  - Every write is a check-and-set on the index read, so a concurrent writer is never overwritten unseen. When another
    writer changed a key between the read and the write, the module reads again and re-plans, up to O(retries) times,
    then fails naming the keys. A failed transaction leaves none of its changes behind.
  - Every key and value is checked before anything is written.
  - Talks to Consul's HTTP API with the Python standard library (the client the Dockyard daemons use), so the host
    that runs it needs no extra Python package.
author:
  - Dockyard engineers (@dockyard)
extends_documentation_fragment:
  - dockyard.platform.consul
attributes:
  action_group:
    support: full
    description: Takes its Consul connection options from C(module_defaults) for the group.
    membership:
      - dockyard.platform.consul
  check_mode:
    support: full
    description: Reads Consul and reports the changes it would make, without writing.
  diff_mode:
    support: full
    description: Shows the before and after value of every changed key; values of O(secret_keys) are masked.
  idempotent:
    support: full
    description: A second run with the same input reports no change and sends no write request.
options:
  prefix:
    description:
      - The KV folder the keys live under, for example V(config/myapp). A trailing V(/) is optional.
      - Keys in O(data), O(src) and O(keys) are relative to it, and O(exclusive) never touches a key outside it.
      - Must not be empty, start with V(/) or contain a V(..) segment.
    type: str
    required: true
  data:
    description:
      - Keys (relative to O(prefix)) and their values.
      - A string is stored as it is; a number or boolean as its JSON text (V(8080), V(true)); a mapping or list as JSON
        (compact, keys sorted). An existing value that parses to the same JSON structure counts as unchanged.
      - A null value is refused; use V('') for an empty value.
      - With O(state=absent), the keys of this mapping are deleted and the values are ignored.
    type: dict
  src:
    description:
      - A directory on the host that runs the module; every file below it is one key, its path below the directory
        (with V(/) separators) is the key, and its content (UTF-8 text) the value.
      - Files and directories whose name starts with V(.) are skipped.
      - A key given both here and in O(data) is an error.
      - A symbolic link is followed only when it resolves inside this directory; one that leads out of it fails the
        task, naming the link, before anything is sent to Consul.
    type: path
  keys:
    description:
      - Keys (relative to O(prefix)) to delete. Only with O(state=absent).
    type: list
    elements: str
  state:
    description:
      - V(present) writes the keys whose value differs; V(absent) deletes the given keys.
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description:
      - With O(state=present), also delete every key under O(prefix) that is not in the desired set, so a key removed
        from the repository is removed from Consul. Keys outside O(prefix) are never touched.
    type: bool
    default: false
  value_format:
    description:
      - V(auto) stores mappings and lists as JSON.
      - V(string) requires every value to be a string, number or boolean and refuses a mapping or list, naming the key.
    type: str
    choices: [auto, string]
    default: auto
  secret_keys:
    description:
      - Patterns (shell-style, as in C(fnmatch), relative to O(prefix)) of keys whose values are secret.
      - Their values are masked in the diff and in the output, and kept out of the module's logs.
    type: list
    elements: str
    default: []
  retries:
    description:
      - How many times to read again and re-plan after another writer changed a key between the read and the write.
    type: int
    default: 3
  kv_max_value_size:
    description:
      - The largest value in bytes that Consul accepts (its C(kv_max_value_size) setting). Larger values fail before
        any write.
    type: int
    default: 524288
  txn_max_req_len:
    description:
      - The largest transaction body in bytes that Consul accepts (its C(txn_max_req_len) setting). Values travel
        base64-encoded, so a value much over 380 KiB does not fit in a transaction with the default.
    type: int
    default: 524288
notes:
  - Keys of more than one transaction are written in key order, one transaction after the other; each transaction is
    atomic, a run of more than 64 changes is not.
  - A missing or weak token shows when Consul's ACLs deny the first write; the module then fails naming the keys and
    that transaction writes nothing. Consul hides keys a token may not read, so check mode without a token cannot
    tell that they exist.
seealso:
  - name: Consul transaction API
    description: The endpoint every write goes through.
    link: https://developer.hashicorp.com/consul/api-docs/txn
"""

EXAMPLES = r"""
- name: Seed the app's configuration from the repository
  dockyard.platform.consul_keys:
    prefix: config/shop
    src: "{{ playbook_dir }}/files/config/shop/{{ env_name }}"
    data:
      replicas: 3
      features:
        checkout_v2: true
      db/password: "{{ vault_shop_db_password }}"
    secret_keys:
      - db/password
      - "*/token"
    exclusive: true
  delegate_to: localhost

- name: Remove two retired keys
  dockyard.platform.consul_keys:
    prefix: config/shop
    state: absent
    keys:
      - legacy/endpoint
      - legacy/timeout

- name: Seed through a TLS agent with a token file
  dockyard.platform.consul_keys:
    address: https://consul.service.internal:8501
    ca_path: /etc/consul.d/ca.pem
    token_file: /etc/dockyard/consul-token
    prefix: config/billing
    data:
      currency: EUR
"""

RETURN = r"""
added:
  description: Full keys that were created (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [config/shop/replicas]
updated:
  description: Full keys whose value was changed (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [config/shop/features]
removed:
  description: Full keys that were deleted (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [config/shop/legacy/endpoint]
conflicts:
  description: Keys another writer changed between the module's read and its write; they were read again and re-planned.
  returned: always
  type: list
  elements: str
  sample: []
transactions:
  description: How many transactions the module sent (0 when nothing changed or in check mode).
  returned: always
  type: int
  sample: 1
keys:
  description: On failure, the keys the message names (bad keys or values, keys in conflict, keys ACLs deny).
  returned: failure
  type: list
  elements: str
  sample: [config/shop/db/password]
status:
  description: On failure of an HTTP request, the HTTP status Consul answered with, if any.
  returned: failure
  type: int
  sample: 403
"""

# Imports follow the documentation, as ansible-test validate-modules requires.
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.dockyard.platform.plugins.module_utils._consul import (
    CONNECTION_ARGUMENT_SPEC,
    CONNECTION_REQUIRED_TOGETHER,
    ConfigError,
    ConsulError,
    client_from_params,
)
from ansible_collections.dockyard.platform.plugins.module_utils._consul_keys import (
    ConsulKeysError,
    KeySeeder,
    SecretMatcher,
    build_desired,
    check_key,
    normalize_prefix,
    read_directory,
    secret_strings,
)


def argument_spec():
    spec = dict(
        prefix=dict(type="str", required=True),
        data=dict(type="dict"),
        src=dict(type="path"),
        keys=dict(type="list", elements="str", no_log=False),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        exclusive=dict(type="bool", default=False),
        value_format=dict(type="str", choices=["auto", "string"], default="auto"),
        secret_keys=dict(type="list", elements="str", default=[], no_log=False),
        retries=dict(type="int", default=3),
        kv_max_value_size=dict(type="int", default=524288),
        txn_max_req_len=dict(type="int", default=524288),
    )
    spec.update(CONNECTION_ARGUMENT_SPEC)
    return spec


class _Module(AnsibleModule):
    """Hides the values of secret keys given in data before AnsibleModule logs its arguments."""

    def _log_invocation(self):
        self.no_log_values.update(_secret_values_in_params(self.params))
        super()._log_invocation()


def _secret_values_in_params(params):
    found = set()
    data = params.get("data") or {}
    prefix = (params.get("prefix") or "").rstrip("/") + "/"
    is_secret = SecretMatcher(prefix, params.get("secret_keys"))
    for key, value in data.items():
        if is_secret(prefix + str(key)):
            found |= secret_strings(value)
    return found


class ConsulKeys:
    """Builds the desired state, runs the seeder and reports."""

    def __init__(self, module):
        self.module = module
        self.params = module.params

    def desired(self, prefix):
        files = read_directory(self.params["src"]) if self.params["src"] else None
        return build_desired(
            prefix,
            self.params["data"],
            files,
            self.params["value_format"],
            self.params["kv_max_value_size"],
            self.params["txn_max_req_len"],
        )

    def seeder(self, client, prefix):
        params = self.params
        if params["retries"] < 0:
            raise ConsulKeysError(f"retries must be 0 or more, not {params['retries']}")
        if params["state"] == "absent":
            if params["exclusive"]:
                raise ConsulKeysError("exclusive applies only with state=present")
            names = list(params["keys"] or []) + list(params["data"] or {})
            if params["src"]:
                names += list(read_directory(params["src"]))
            for name in names:
                check_key(name)
            return KeySeeder(
                client,
                prefix,
                state="absent",
                remove=[prefix + name for name in names],
                retries=params["retries"],
                check_mode=self.module.check_mode,
            )
        return KeySeeder(
            client,
            prefix,
            desired=self.desired(prefix),
            exclusive=params["exclusive"],
            retries=params["retries"],
            check_mode=self.module.check_mode,
            max_bytes=params["txn_max_req_len"],
        )

    def run(self):
        prefix = normalize_prefix(self.params["prefix"])
        is_secret = SecretMatcher(prefix, self.params["secret_keys"])
        client = client_from_params(self.params)
        outcome = self.seeder(client, prefix).run()
        for key, change in outcome.changes.items():
            if is_secret(key):
                for raw in (change.before, change.after):
                    if raw:
                        self.module.no_log_values.add(raw.decode("utf-8", errors="replace"))
        result = dict(
            changed=outcome.changed,
            added=outcome.keys("added"),
            updated=outcome.keys("updated"),
            removed=outcome.keys("removed"),
            conflicts=sorted(outcome.conflicts),
            transactions=outcome.transactions,
        )
        if self.module._diff:
            result["diff"] = outcome.diff(is_secret)
        return result


def main():
    module = _Module(
        argument_spec=argument_spec(),
        mutually_exclusive=[("keys", "data"), ("keys", "src")],
        required_together=CONNECTION_REQUIRED_TOGETHER,
        required_if=[
            ("state", "present", ("data", "src"), True),
            ("state", "absent", ("keys", "data", "src"), True),
        ],
        supports_check_mode=True,
    )
    try:
        result = ConsulKeys(module).run()
    except ConsulKeysError as error:
        module.fail_json(msg=str(error), keys=error.keys)
    except ConfigError as error:
        module.fail_json(msg=str(error))
    except ConsulError as error:
        module.fail_json(msg=str(error), status=error.status)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
