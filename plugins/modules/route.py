#!/usr/bin/python
# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: route
short_description: Write or remove one app's route in Consul, checked as every router will read it
version_added: 0.1.0
description:
  - Writes C(<prefix>routes/<name>), the route spec every Dockyard router renders into HAProxy (hosts, service port,
    balance, health check, canary weight, stickiness), or removes it.
  - The spec is parsed by the same routing schema the routers run, so a value a router would skip (a host that is not
    a DNS name, a health path with a space, a service port outside O(service_port_range) or one of the router's own
    ports, an unknown key) fails the task naming the field, and nothing is written.
  - A host or service port that an older route already holds (by Consul's create index, whatever the names) fails the
    task naming that route; the routers would skip the newer claim.
  - The write is a check-and-set on the index read, so a concurrent writer is never overwritten unseen.
author:
  - Dockyard engineers (@dockyard)
extends_documentation_fragment:
  - dockyard.platform.consul
  - dockyard.platform.router_ports
attributes:
  action_group:
    support: full
    description: Takes its Consul connection options from C(module_defaults) for the group.
    membership:
      - dockyard.platform.consul
  check_mode:
    support: full
    description: Reads Consul, checks the spec and its claims, and reports the change it would make, without writing.
  diff_mode:
    support: full
    description: Shows the stored spec before and after.
  idempotent:
    support: full
    description: A second run with the same spec reports no change and sends no write request.
options:
  name:
    description:
      - The app's name; the route's key is C(<prefix>routes/<name>).
      - Letters, digits, V(.), V(_) and V(-), at most 100, starting with a letter or digit.
    type: str
    required: true
  state:
    description: Whether the route exists.
    type: str
    choices: [present, absent]
    default: present
  hosts:
    description:
      - DNS names routed by the Host header on every router (case and a trailing dot do not matter); at most 256.
      - At least one of O(hosts) and O(service_port) with O(state=present).
    type: list
    elements: str
  service_port:
    description: The app's port on every router, within O(service_port_range).
    type: int
  balance:
    description: HAProxy's balance algorithm; the routers use V(roundrobin) when unset.
    type: str
    choices: [roundrobin, leastconn, source]
  health:
    description: The routers' health check of each instance; a TCP connect check when unset.
    type: dict
    suboptions:
      path:
        description: HTTP checks send V(GET <path>); a path starting with V(/), no spaces, quotes, V(#), V(\\) or V($).
        type: str
      expect_status:
        description: The status a healthy instance answers (needs O(health.path)); 200 when unset.
        type: int
      body_contains:
        description:
          - Text the answer's body must contain (needs O(health.path)); at most 128 letters, digits or URL
            punctuation, no spaces, quotes, V(#) or V(\\).
        type: str
      interval:
        description: Time between checks, V(100ms) to V(1h); the router's default when unset.
        type: str
  canary_weight:
    description: The percentage (0-100) of new requests sent to instances of track V(canary) while both tracks run.
    type: int
  sticky:
    description: Keep a client on its instance with a cookie.
    type: bool
  idempotency_header:
    description:
      - The name of a request header (such as V(Idempotency-Key)) whose presence tells the routers that the request
        is safe to send again to another instance when the first one closed its connection without answering.
      - Without it only GET, HEAD, OPTIONS, TRACE, PUT and DELETE requests are sent again; a request that never
        reached an instance (a refused connection) is always sent to another one.
    type: str
  prefix:
    description: The platform's KV prefix (the routers' C(haproxy_kv_prefix)), ending in V(/).
    type: str
    default: dockyard/
notes:
  - Write routes with this module rather than with P(dockyard.platform.consul_keys#module) or by hand, so that a bad
    spec or a clash is refused here instead of being skipped (and logged) by every router.
seealso:
  - module: dockyard.platform.consul_keys
"""

EXAMPLES = r"""
- name: Route shop.example.com and port 10080 to the shop app's instances
  dockyard.platform.route:
    name: shop
    hosts: [shop.example.com, www.shop.example.com]
    service_port: 10080
    health:
      path: /healthz
      interval: 2s
    canary_weight: 10
  delegate_to: localhost

- name: Remove the route of an app that is gone
  dockyard.platform.route:
    name: legacy
    state: absent
"""

RETURN = r"""
key:
  description: The route's key in Consul.
  returned: always
  type: str
  sample: dockyard/routes/shop
route:
  description: The spec as stored after the task (absent after removal).
  returned: when O(state=present)
  type: dict
  sample: {"hosts": ["shop.example.com"], "service_port": 10080, "health": {"path": "/healthz"}}
"""

# Imports follow the documentation, as ansible-test validate-modules requires.
import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.dockyard.platform.plugins.module_utils._consul import (
    CONNECTION_ARGUMENT_SPEC,
    CONNECTION_REQUIRED_TOGETHER,
    ConfigError,
    ConsulError,
    client_from_params,
)
from ansible_collections.dockyard.platform.plugins.module_utils._route import (
    ROUTER_PORTS_ARGUMENT_SPEC,
    entries,
    plan,
    spec_from_params,
)
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul import kv_path
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.routing import (
    RouteError,
    parse_prefix,
    route_key,
)


def argument_spec():
    spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        hosts=dict(type="list", elements="str"),
        service_port=dict(type="int"),
        balance=dict(type="str", choices=["roundrobin", "leastconn", "source"]),
        health=dict(
            type="dict",
            options=dict(
                path=dict(type="str"),
                expect_status=dict(type="int"),
                body_contains=dict(type="str"),
                interval=dict(type="str"),
            ),
        ),
        canary_weight=dict(type="int"),
        sticky=dict(type="bool"),
        idempotency_header=dict(type="str"),
        prefix=dict(type="str", default="dockyard/"),
    )
    spec.update(CONNECTION_ARGUMENT_SPEC)
    spec.update(ROUTER_PORTS_ARGUMENT_SPEC)
    return spec


class Route:
    """Reads the routes, plans this one's write and, unless in check mode, makes it."""

    def __init__(self, module):
        self.module = module
        self.params = module.params

    def run(self):
        params = self.params
        prefix = parse_prefix(params["prefix"], "prefix")
        spec = spec_from_params(params) if params["state"] == "present" else None
        port_range = (params["service_port_range"]["first"], params["service_port_range"]["last"])
        client = client_from_params(params)
        current = entries(client.kv_read_tree(route_key(prefix, "")), prefix)
        planned = plan(params["name"], spec, current, prefix, params["reserved_ports"], port_range)
        result = dict(changed=planned.changed, key=planned.key)
        if spec is not None:
            result["route"] = planned.after
        if self.module._diff:
            result["diff"] = dict(before=planned.before or {}, after=planned.after or {})
        if planned.changed and not self.module.check_mode:
            self.write(client, planned)
        self.module.exit_json(**result)

    def write(self, client, planned):
        query = {"cas": str(planned.modify_index)}
        if planned.after is None:
            answer = client.request("DELETE", kv_path(planned.key), params=query)
        else:
            answer = client.request("PUT", kv_path(planned.key), params=query, body=planned.after)
        if answer.json() is not True:
            self.module.fail_json(
                msg=f"{planned.key} changed while this task ran (check-and-set refused): nothing written; run again",
                key=planned.key,
            )
        stored = client.request("GET", kv_path(planned.key), params={"raw": "true"})
        found = None if stored.status == 404 else json.loads(stored.body or b"null")
        if found != planned.after:
            self.module.fail_json(
                msg=f"{planned.key} does not hold what was written when read back (another writer?): run again",
                key=planned.key,
            )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_together=CONNECTION_REQUIRED_TOGETHER,
        required_if=[("state", "present", ("hosts", "service_port"), True)],
        supports_check_mode=True,
    )
    try:
        Route(module).run()
    except RouteError as error:
        module.fail_json(msg=str(error))
    except ConfigError as error:
        module.fail_json(msg=str(error))
    except ConsulError as error:
        module.fail_json(msg=str(error), status=error.status)


if __name__ == "__main__":
    main()
