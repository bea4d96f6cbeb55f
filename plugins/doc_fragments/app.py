# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # What the app modules reach besides Consul: the Swarm manager's engine and the ZooKeeper ensemble that holds
    # the deployment locks and the ledger (plugins/module_utils/_app.py, CONNECTION_ARGUMENT_SPEC).
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker engine of a Swarm manager, where the module runs. Only a local Unix socket is taken.
    type: str
    default: unix:///var/run/docker.sock
  zookeeper_hosts:
    description:
      - The ZooKeeper ensemble, V(host:port,host:port), optionally followed by the chroot (V(/dockyard)).
    type: str
    required: true
  zookeeper_chroot:
    description: The chroot of the locks and the ledger, when O(zookeeper_hosts) names none.
    type: str
    default: /dockyard
  zookeeper_username:
    description: The digest user that owns the chroot (the zookeeper role's deployer); with O(zookeeper_password).
    type: str
  zookeeper_password:
    description: That user's password.
    type: str
  prefix:
    description: The platform's KV prefix (the routers' C(haproxy_kv_prefix)), ending in V(/).
    type: str
    default: dockyard/
"""
