# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lookup dockyard.platform.environment_dir: the one controller directory of an environment's secrets."""

from __future__ import annotations

DOCUMENTATION = r"""
name: environment_dir
version_added: 0.1.0
short_description: The controller directory that holds every generated secret of an environment
description:
  - Returns C(<dockyard_secrets_root>/<dockyard_environment>), the one directory on the controller where the roles
    keep an environment's generated secrets, tokens, passwords and certificate authorities.
  - The environment defaults to the name of the inventory directory (C(inventory_dir | basename)); for the implicit
    C(localhost), which has no C(inventory_dir), the directory of the one inventory source.
  - Fails naming O(environment) and the inventory when the name is not 1 to 63 lowercase letters, digits, C(-) or
    C(_) starting with a letter or a digit, and naming O(secrets_root) when the root is not an absolute path.
  - Takes no terms. It does not create the directory.
options:
  environment:
    description: The environment's name.
    type: str
    vars:
      - name: dockyard_environment
  secrets_root:
    description: The directory that holds one directory per environment; C(~) is expanded.
    type: str
    default: ~/.dockyard/environments
    vars:
      - name: dockyard_secrets_root
"""

EXAMPLES = r"""
- name: Show where this environment's secrets live
  ansible.builtin.debug:
    msg: "{{ lookup('dockyard.platform.environment_dir') }}"

# A role's default: its own store inside the environment's directory.
# consul_secrets_dir: "{{ lookup('dockyard.platform.environment_dir') }}/consul"
"""

RETURN = r"""
_raw:
  description: The absolute path of the environment's directory, as a one-element list.
  type: list
  elements: path
"""

# validate-modules wants DOCUMENTATION, EXAMPLES and RETURN before the imports.
import os  # noqa: E402
import re  # noqa: E402

from ansible.errors import AnsibleLookupError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402

ENVIRONMENT_GRAMMAR = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
DEFAULT_SECRETS_ROOT = "~/.dockyard/environments"


class EnvironmentNameError(ValueError):
    """An environment name or secrets root the platform refuses, with a message naming the variable."""


def inventory_directory(inventory_dir: str | None, inventory_sources: list[str] | None) -> str:
    """The inventory directory the environment is named after.

    The implicit localhost has no inventory_dir; with one inventory source its directory names the environment,
    as inventory_dir would (a file source's directory, a directory source itself)."""
    if inventory_dir:
        return inventory_dir
    sources = list(inventory_sources or [])
    if len(sources) != 1:
        raise EnvironmentNameError(
            f"dockyard_environment is not set and the inventory directory is unknown ({len(sources)} inventory "
            "sources): set dockyard_environment in the inventory"
        )
    source = sources[0]
    return source if os.path.isdir(source) else os.path.dirname(source)


def environment_name(configured: str | None, inventory_dir: str | None) -> str:
    """The environment's name: the configured one, else the inventory directory's name; refused outside the grammar."""
    if configured is None:
        name = os.path.basename(os.path.normpath(inventory_dir))
        origin = f"dockyard_environment (default: the name of {inventory_dir})"
    else:
        name, origin = configured, "dockyard_environment"
    if not isinstance(name, str) or not ENVIRONMENT_GRAMMAR.fullmatch(name):
        where = f" {inventory_dir}" if inventory_dir else ""
        raise EnvironmentNameError(
            f"{origin} is {name!r}, not an environment name: use 1 to 63 lowercase letters, digits, '-' or '_', "
            f"starting with a letter or a digit; set dockyard_environment in the inventory{where}"
        )
    return name


def secrets_root(configured: str | None) -> str:
    """The absolute directory above every environment's directory; refused when relative."""
    root = os.path.expanduser(DEFAULT_SECRETS_ROOT if configured is None else configured)
    if not os.path.isabs(root):
        raise EnvironmentNameError(
            f"dockyard_secrets_root is {configured!r}, not an absolute path (or one starting with ~): a relative "
            "root would move with the directory ansible-playbook runs from"
        )
    return os.path.normpath(root)


def environment_dir(root: str, name: str) -> str:
    return os.path.join(root, name)


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleLookupError("dockyard.platform.environment_dir takes no terms")
        variables = variables or {}
        self.set_options(var_options=variables, direct=kwargs)
        configured_name = self._templar.template(self.get_option("environment"))
        configured_root = self._templar.template(self.get_option("secrets_root"))
        inventory = self._templar.template(variables.get("inventory_dir"))
        try:
            if configured_name is None:
                sources = self._templar.template(variables.get("ansible_inventory_sources"))
                inventory = inventory_directory(inventory, sources)
            name = environment_name(configured_name, inventory)
            return [environment_dir(secrets_root(configured_root), name)]
        except EnvironmentNameError as error:
            raise AnsibleLookupError(str(error)) from None
