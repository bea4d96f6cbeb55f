# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The filter dockyard.platform.seconds: a duration in the platform's one grammar, as seconds."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.config import ConfigError, duration


def seconds(value, name="duration"):
    try:
        return duration(value, name)
    except ConfigError as error:
        raise AnsibleFilterError(str(error)) from None


class FilterModule:
    def filters(self):
        return {"seconds": seconds}
