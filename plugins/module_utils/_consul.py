# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The modules' Consul connection options, mapped onto the one Consul client (daemon/consul.py).

Private to this collection. Every Dockyard module that talks to Consul:
- takes CONNECTION_ARGUMENT_SPEC (and CONNECTION_REQUIRED_TOGETHER) into its
  argument spec and extends the doc fragment dockyard.platform.consul, which
  documents the same options;
- builds its client with client_from_params(), which checks the settings with
  the daemons' own parser (daemon.consul.parse_settings: the address check,
  TLS files, token) and names a bad option in the error;
- is listed in the action group `consul` of meta/runtime.yml, so a play sets
  the options once with module_defaults.

The environment variables are Ansible fallbacks here (env_fallback), so the
parser gets no environment of its own.
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import env_fallback
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.config import ConfigError
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul import (
    DEFAULT_ADDRESS,
    ENVIRONMENT,
    ConsulClient,
    ConsulError,
    check_files,
    parse_settings,
)

__all__ = ["CONNECTION_ARGUMENT_SPEC", "CONNECTION_REQUIRED_TOGETHER", "ConfigError", "ConsulError"]

# The options every Consul module shares; plugins/doc_fragments/consul.py documents them (keep the two in step:
# ansible-test validate-modules compares them).
CONNECTION_ARGUMENT_SPEC = dict(
    address=dict(type="str", default=DEFAULT_ADDRESS, fallback=(env_fallback, ["CONSUL_HTTP_ADDR"])),
    use_ssl=dict(type="bool", default=False, fallback=(env_fallback, ["CONSUL_HTTP_SSL"])),
    validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["CONSUL_HTTP_SSL_VERIFY"])),
    ca_path=dict(type="path", fallback=(env_fallback, ["CONSUL_CACERT"])),
    client_cert=dict(type="path", fallback=(env_fallback, ["CONSUL_CLIENT_CERT"])),
    client_key=dict(type="path", no_log=False, fallback=(env_fallback, ["CONSUL_CLIENT_KEY"])),
    token=dict(type="str", no_log=True, fallback=(env_fallback, ["CONSUL_HTTP_TOKEN"])),
    token_file=dict(type="path", no_log=False, fallback=(env_fallback, ["CONSUL_HTTP_TOKEN_FILE"])),
    datacenter=dict(type="str"),
    timeout=dict(type="int", default=10),
)
CONNECTION_REQUIRED_TOGETHER = [("client_cert", "client_key")]

# The settings whose environment variable is reported as such when a value came from it.
_FROM_ENVIRONMENT = ("address", "ca_file", "cert_file", "key_file")
# Each option, the setting of daemon.consul.ConsulSettings it fills.
SETTING_OF = {
    "address": "address",
    "use_ssl": "ssl",
    "validate_certs": "verify",
    "ca_path": "ca_file",
    "client_cert": "cert_file",
    "client_key": "key_file",
    "token": "token",
    "token_file": "token_file",
    "datacenter": "datacenter",
    "timeout": "timeout",
}


def settings_from_params(params):
    """daemon.consul.ConsulSettings from a module's params; ConfigError naming the option when one is bad.

    A path or address that Ansible took from its environment variable goes to
    the parser as that variable, so messages say so and TLS files from the
    environment are held to the rules of the environment.
    """
    raw, environ = {}, {}
    names = {"https": "use_ssl=true", "scheme": "use_ssl"}
    names["token"] = "the token option (or CONSUL_HTTP_TOKEN)"
    names["token_file"] = "the token_file option (or CONSUL_HTTP_TOKEN_FILE)"
    for option, setting in SETTING_OF.items():
        names.setdefault(setting, option)
        value = params.get(option)
        variable = ENVIRONMENT.get(setting)
        if setting in _FROM_ENVIRONMENT and isinstance(value, str) and os.environ.get(variable) == value:
            environ[variable] = value
            names[variable] = f"{option} (from {variable})"
        else:
            raw[setting] = value
    settings = parse_settings(raw, environ, names)
    check_files(settings)
    return settings


def client_from_params(params):
    """The Consul client for a module's params (see CONNECTION_ARGUMENT_SPEC).

    Raises ConfigError naming a bad option, ConsulError when a TLS or token file cannot be used.
    """
    settings = settings_from_params(params)
    try:
        return ConsulClient(settings)
    except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
        given = [option for option in ("ca_path", "client_cert", "client_key") if params.get(option)]
        raise ConsulError("cannot load the TLS files of {}: {}".format(", ".join(given), error)) from None
