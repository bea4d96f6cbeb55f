# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The action dockyard.platform.inventory_shape: the inventory's groups, host names and ports, checked on the
controller before any host changes.

It reads the platform's groups and, per host, only the variables the check needs (templated one by one through
hostvars, so a vaulted password the check never reads needs no vault here), and hands them to the pure check in
module_utils/_inventory_shape.py. Its documentation is plugins/modules/inventory_shape.py.
"""

from __future__ import annotations

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.dockyard.platform.plugins.module_utils._inventory_shape import (
    PLATFORM_GROUPS,
    check,
    needed_variables,
)


def read_values(groups: dict, hostvars) -> tuple:
    """({host: {variable: value}} for what the inventory sets of the variables the check needs, [warnings]).

    A variable that cannot be templated on the controller (one made from a host's facts, say) is left out and named
    in a warning: the check then takes the role's default for it.
    """
    values, warnings = {}, []
    for host in dict.fromkeys(host for name in PLATFORM_GROUPS for host in groups.get(name, ())):
        host_vars = hostvars[host]
        values[host] = {}
        for name in needed_variables(groups, host):
            if name not in host_vars:
                continue
            try:
                values[host][name] = host_vars[name]
            except AnsibleError as error:
                warnings.append(
                    f"host {host}: {name} could not be templated on the controller, so its shape was checked with the "
                    f"role's default instead ({str(error).splitlines()[0]})"
                )
    return values, warnings


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        self.validate_argument_spec(argument_spec={})
        groups = {name: list(task_vars["groups"].get(name) or ()) for name in PLATFORM_GROUPS}
        values, unread = read_values(groups, task_vars["hostvars"])
        findings = check(groups, values)
        warnings = list(findings.warnings) + unread
        result.update(changed=False, errors=list(findings.errors))
        if warnings:
            result["warnings"] = warnings
        if findings.errors:
            result.update(
                failed=True,
                msg="The inventory's shape cannot work ({} problem{}); nothing was changed:\n{}".format(
                    len(findings.errors),
                    "" if len(findings.errors) == 1 else "s",
                    "\n".join(f"- {error}" for error in findings.errors),
                ),
            )
        else:
            result["msg"] = "The inventory's groups, host names and ports fit the platform."
        return result
