# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The Consul connection options of every Dockyard module that talks to Consul
    # (plugins/module_utils/_consul.py, CONNECTION_ARGUMENT_SPEC). Set them once for a play with
    # module_defaults and the action group dockyard.platform.consul.
    DOCUMENTATION = r"""
options:
  address:
    description:
      - Consul's HTTP address, V(host:port) or V(http://host:port) or V(https://host:port). A scheme in the address
        wins over O(use_ssl).
      - Credentials (V(user:password@)) or a path in the address are refused; give an ACL token in O(token) or
        O(token_file).
      - Falls back to the E(CONSUL_HTTP_ADDR) environment variable.
    type: str
    default: 127.0.0.1:8500
  use_ssl:
    description:
      - Use HTTPS when O(address) names no scheme.
      - Falls back to the E(CONSUL_HTTP_SSL) environment variable.
    type: bool
    default: false
  validate_certs:
    description:
      - Verify Consul's TLS certificate.
      - Falls back to the E(CONSUL_HTTP_SSL_VERIFY) environment variable.
    type: bool
    default: true
  ca_path:
    description:
      - A CA bundle to verify Consul's certificate with. Needs HTTPS (O(use_ssl) or an V(https://) address).
      - Falls back to the E(CONSUL_CACERT) environment variable.
    type: path
  client_cert:
    description:
      - A client certificate for Consul's mutual TLS. Requires O(client_key).
      - Falls back to the E(CONSUL_CLIENT_CERT) environment variable.
    type: path
  client_key:
    description:
      - The key of O(client_cert).
      - Falls back to the E(CONSUL_CLIENT_KEY) environment variable.
    type: path
  token:
    description:
      - The ACL token.
      - Falls back to the E(CONSUL_HTTP_TOKEN) environment variable.
    type: str
  token_file:
    description:
      - A file holding the ACL token, used when O(token) is not set.
      - Falls back to the E(CONSUL_HTTP_TOKEN_FILE) environment variable.
    type: path
  datacenter:
    description:
      - The datacenter to ask; by default the agent's own.
    type: str
  timeout:
    description:
      - Seconds to wait for each HTTP request.
    type: int
    default: 10
notes:
  - The Consul connection options can be set once for a play with C(module_defaults) and the action group
    C(group/dockyard.platform.consul).
  - A token Consul does not know (HTTP 403) fails the task with a message that names where the token came from
    (O(token) or O(token_file), or their environment variables), never the token itself.
"""
