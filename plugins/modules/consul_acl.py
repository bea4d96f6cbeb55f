#!/usr/bin/python
# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: consul_acl
short_description: Keep Consul ACL policies and tokens as given, in one call
version_added: 0.1.0
description:
  - Reads every given policy (by name) and token (by accessor ID) from Consul, then creates what is missing and updates
    what differs, policies first, since tokens name them.
  - Policies and tokens that are not given are left as they are.
  - A token is created with the accessor and secret IDs given, so the secret handed to its users stays the same from run
    to run. Only its description and policies are ever updated; a token that exists with another secret is an error,
    never overwritten.
  - Every name, ID and text is checked before anything is read or written.
  - Every policy and token written is read back; one that Consul acknowledged but does not hold fails the task,
    naming it.
  - One module call for the whole set, where a task per policy and token made most of a rerun's time in the consul
    role.
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
    description: Reads Consul and reports what it would create or update, without writing.
  diff_mode:
    support: full
    description: >-
      Shows each changed policy (name, description, rules) and token (description, accessor ID, policies); never a
      secret ID.
  idempotent:
    support: full
    description: A second run with the same input reports no change and sends no write request.
options:
  policies:
    description:
      - The policies to keep.
      - Rules given as JSON text or as a mapping count as unchanged when they parse to the same structure as Consul's.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The policy's name, 1-128 letters, digits, V(-) or V(_).
        type: str
        required: true
      description:
        description: The policy's description.
        type: str
        default: ""
      rules:
        description: The policy's rules, as HCL or JSON text, or as a mapping (sent as JSON).
        type: raw
        required: true
  tokens:
    description:
      - The tokens to keep.
    type: list
    elements: dict
    default: []
    suboptions:
      accessor_id:
        description: The token's accessor ID, a lower-case UUID.
        type: str
        required: true
      secret_id:
        description: The token's secret ID, a lower-case UUID. Used when the token is created, and compared otherwise.
        type: str
        required: true
      description:
        description: The token's description.
        type: str
        required: true
      policies:
        description: The names of the token's policies.
        type: list
        elements: str
        required: true
notes:
  - The token given in O(token) needs C(acl = "write").
"""

EXAMPLES = r"""
- name: Keep the platform's policies and tokens
  dockyard.platform.consul_acl:
    address: https://127.0.0.1:8501
    ca_path: /etc/consul.d/tls/ca.pem
    client_cert: /etc/consul.d/tls/agent.pem
    client_key: /etc/consul.d/tls/agent-key.pem
    token: "{{ consul_management_token }}"
    policies:
      - name: deployer
        description: Deployments write routes.
        rules: {key_prefix: {"dockyard/routes/": {policy: write}}}
    tokens:
      - accessor_id: "{{ deployer_accessor_id }}"
        secret_id: "{{ deployer_secret_id }}"
        description: dockyard deployer
        policies: [deployer]
  no_log: true
"""

RETURN = r"""
policies_created:
  description: The names of the policies created (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [deployer]
policies_updated:
  description: The names of the policies updated.
  returned: always
  type: list
  elements: str
  sample: []
tokens_created:
  description: The descriptions of the tokens created.
  returned: always
  type: list
  elements: str
  sample: [dockyard deployer]
tokens_updated:
  description: The descriptions of the tokens updated.
  returned: always
  type: list
  elements: str
  sample: []
status:
  description: The HTTP status of a failed request to Consul.
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
from ansible_collections.dockyard.platform.plugins.module_utils._consul_acl import (
    AclError,
    apply,
    parse_policies,
    parse_tokens,
    plan,
)


def argument_spec():
    spec = dict(
        policies=dict(
            type="list",
            elements="dict",
            default=[],
            options=dict(
                name=dict(type="str", required=True),
                description=dict(type="str", default=""),
                rules=dict(type="raw", required=True),
            ),
        ),
        tokens=dict(
            type="list",
            elements="dict",
            default=[],
            no_log=False,
            options=dict(
                accessor_id=dict(type="str", required=True, no_log=False),
                secret_id=dict(type="str", required=True, no_log=True),
                description=dict(type="str", required=True),
                policies=dict(type="list", elements="str", required=True),
            ),
        ),
    )
    spec.update(CONNECTION_ARGUMENT_SPEC)
    return spec


def run(module):
    policies = parse_policies(module.params["policies"])
    tokens = parse_tokens(module.params["tokens"])
    client = client_from_params(module.params)
    result = plan(client, policies, tokens)
    if result.changed and not module.check_mode:
        apply(client, result)
    outcome = dict(
        changed=result.changed,
        policies_created=result.names("policies", created=True),
        policies_updated=result.names("policies", created=False),
        tokens_created=result.names("tokens", created=True),
        tokens_updated=result.names("tokens", created=False),
    )
    if module._diff and result.changed:
        outcome["diff"] = dict(
            before="".join(line + "\n" for line in result.diff_before),
            after="".join(line + "\n" for line in result.diff_after),
        )
    return outcome


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_together=CONNECTION_REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    try:
        outcome = run(module)
    except (AclError, ConfigError) as error:
        module.fail_json(msg=str(error))
    except ConsulError as error:
        module.fail_json(msg=str(error), status=error.status)
    module.exit_json(**outcome)


if __name__ == "__main__":
    main()
