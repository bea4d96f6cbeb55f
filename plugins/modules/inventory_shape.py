#!/usr/bin/python
# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: inventory_shape
short_description: Check that the inventory's groups, host names and ports fit the platform, before anything changes
version_added: 0.1.0
description:
  - Reads the inventory on the controller and fails listing every problem that would make C(playbooks/site.yml) fail
    part way or build a platform that cannot work, each naming the group, host or variable and what to do; warns about
    what works, but not as well as it could. C(site.yml) runs it first, before any host is touched.
  - Groups. C(zookeeper), C(consul_servers), C(scheduler_masters) and C(docker_hosts) must have hosts. A host may not be
    in both C(scheduler_masters) and C(scheduler_agents), and every scheduler node must be in C(docker_hosts).
    C(registry) may be empty (the Docker hosts then trust and log in to no private registry).
  - Quorums. An even number of hosts in C(zookeeper), C(consul_servers) or C(scheduler_masters) is a warning saying
    how many failures it survives.
  - Routers. No router at all, a router that is not a scheduler node (an edge router that runs no app) and routers of
    which none is a scheduler node are warnings that say what the platform then does.
  - Host names. A name is refused only where a system the platform gives it to refuses it; capitals, V(_) and V(-)
    work everywhere. Refused are a scheduler node's or router's name outside the routing schema's node names (1 to 100
    letters, digits, V(.), V(_) or V(-)); a scheduler node's name longer than 74 characters (the router reporter reads
    HAProxy server names C(<node>-<Swarm task ID>) of at most 100); a V(.) in a scheduler node's or router's name (the
    consul role makes the ACL policies C(registrator-<node>) and C(router-<node>), and Consul takes only letters,
    digits, V(-) and V(_) there); two names that differ only in case among the Consul agents or those policies (Consul
    compares them ignoring case); a name longer than 64 characters that becomes a certificate's common name (a registry
    host, a Docker host with C(docker_host_remote_api)). A first registry host whose name is no Docker image domain
    (V(_), or V(-) at either end of a part) is a warning.
  - Ports. On each host, two components given the same TCP port on addresses that can clash (the same one, a wildcard,
    or the host's own and a non-loopback one) are refused, naming the host and both variables, as are a value that is
    no port number and a router's C(haproxy_service_port_range) holding another component's port. The ports are those
    of the roles' variables (C(zookeeper_*_port), C(consul_https_port), C(consul_http_port), C(registry_port),
    C(docker_host_remote_api_port), C(docker_host_metrics_address), C(scheduler_master_listen_port),
    C(haproxy_http_port), C(haproxy_https_port), C(haproxy_management_port), C(renderer_status_port)) and the fixed ones
    of Consul (8300 to 8302, 8600) and Swarm (7946), on the hosts whose groups run them.
  - Only the variables it checks are templated, per host; a variable that cannot be templated on the controller (made
    from facts, say) is checked with the role's default and named in a warning.
author:
  - Dockyard engineers (@dockyard)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
    description: The whole check runs on the controller; nothing runs on a host.
  async:
    support: none
  bypass_host_loop:
    support: none
    description: Runs once per host of the play; run it on C(localhost).
  check_mode:
    support: full
    description: It only reads the inventory, in check mode as in a run.
  diff_mode:
    support: none
  idempotent:
    support: full
    description: It never changes anything.
  platform:
    platforms: all
options: {}
notes:
  - The groups are the ones C(playbooks/site.yml) runs its plays on; the roles' C(*_group) variables do not rename them.
  - Each variable is read as the host has it in the inventory, else as the role's default has it.
seealso:
  - name: Inventory shape
    description: What an inventory may look like, and what is checked (docs/environments.md).
    link: https://example.invalid/dockyard/platform/docs/environments.md
"""

EXAMPLES = r"""
- name: Check the inventory's shape before anything changes
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Check the inventory's groups, host names and ports
      dockyard.platform.inventory_shape:
"""

RETURN = r"""
errors:
  description: Every problem found, one sentence each naming the group, host or variable and what to do; the task fails
    when there is one.
  returned: always
  type: list
  elements: str
  sample:
    - "group consul_servers is empty or missing: its hosts are the Consul servers every other agent joins, ...; put 3
      (or 5) hosts in it."
"""
