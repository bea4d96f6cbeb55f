# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The routers' ports a module checks a route's service port against (plugins/module_utils/_route.py,
    # ROUTER_PORTS_ARGUMENT_SPEC), as the routers themselves will.
    DOCUMENTATION = r"""
options:
  service_port_range:
    description:
      - The first and last service port routes may take (the routers' C(haproxy_service_port_range)).
    type: dict
    default: {first: 10000, last: 19999}
    suboptions:
      first:
        description: The first port of the range.
        type: int
        required: true
      last:
        description: The last port of the range.
        type: int
        required: true
  reserved_ports:
    description: The routers' own ports (HTTP, HTTPS, management), which no route may take.
    type: list
    elements: int
    default: [80, 443, 8404]
"""
