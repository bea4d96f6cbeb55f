#!/usr/bin/python
# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: app_info
short_description: The apps on the Swarm, their instances per version and their deployment history
version_added: 0.1.0
description:
  - Runs on a Swarm manager and reads the apps that M(dockyard.platform.app) deployed, each with its live version,
    the instances asked for and serving (healthy and registered, and UP on the reporting routers) per version, and
    its newest deployments from the ledger in ZooKeeper.
author:
  - Dockyard engineers (@dockyard)
extends_documentation_fragment:
  - dockyard.platform.consul
  - dockyard.platform.app
attributes:
  action_group:
    support: full
    description: Takes its Consul connection options from C(module_defaults) for the group.
    membership:
      - dockyard.platform.consul
  check_mode:
    support: full
    description: It only reads.
  diff_mode:
    support: none
    description: It changes nothing.
  idempotent:
    support: full
    description: It changes nothing.
options:
  name:
    description: One app; every app the ledger knows when unset.
    type: str
  history:
    description: How many of each app's newest deployments to return.
    type: int
    default: 10
requirements:
  - python3-docker, python3-kazoo (Debian packages) on the Swarm manager
"""

EXAMPLES = r"""
- name: Read shop's versions and history
  dockyard.platform.app_info:
    name: shop
    zookeeper_hosts: zk1:2181
  register: shop

- name: Say how many instances serve
  ansible.builtin.debug:
    msg: "{{ shop.apps[0].serving }} of {{ shop.apps[0].desired }} instances of shop serve"
"""

RETURN = r"""
apps:
  description: One entry per app.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The app.
      type: str
    version:
      description: The live version id (none when nothing runs).
      type: str
    desired:
      description: Instances asked for, all versions together.
      type: int
    serving:
      description: Instances serving, all versions together.
      type: int
    versions:
      description: Each version service with its image, instances asked for (replicas) and serving.
      type: list
      elements: dict
    config:
      description:
        - For each version with configuration and each node that renders it or runs its instances, what the
          node's agent rendered. C(key_index) is the Consul index of the newest key it rendered from; C(errors)
          names each template whose last render failed, by template, with the reason; the last good file stays.
          C(instances) are the version's running tasks on that node, which read those files.
      type: list
      elements: dict
    history:
      description: The newest deployments, newest first (id, version, image, who, when, steps, outcome).
      type: list
      elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.dockyard.platform.plugins.module_utils._app import (
    CONNECTION_ARGUMENT_SPEC,
    CONNECTION_REQUIRED_TOGETHER,
    deployer_from_params,
)
from ansible_collections.dockyard.platform.plugins.module_utils._consul import ConfigError, ConsulError
from ansible_collections.dockyard.platform.plugins.module_utils.app.ledger import LedgerError
from ansible_collections.dockyard.platform.plugins.module_utils.app.spec import SpecError, parse_name_option
from ansible_collections.dockyard.platform.plugins.module_utils.app.swarm import SwarmError


def main():
    module = AnsibleModule(
        argument_spec=dict(name=dict(type="str"), history=dict(type="int", default=10), **CONNECTION_ARGUMENT_SPEC),
        required_together=CONNECTION_REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    params = module.params
    if params["history"] < 0:
        module.fail_json(msg="history: expected a count of 0 or more")
    try:
        with deployer_from_params(params) as deployer:
            names = [parse_name_option(params["name"])] if params["name"] else deployer.ledger.apps()
            apps = [deployer.status(name, params["history"]) for name in names]
    except SpecError as error:
        module.fail_json(msg=str(error))
    except (ConfigError, ConsulError, LedgerError, SwarmError) as error:
        module.fail_json(msg=str(error))
    module.exit_json(changed=False, apps=apps)


if __name__ == "__main__":
    main()
