# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The test dockyard.platform.duration: is a value a duration in the platform's one grammar."""

from __future__ import annotations

from ansible_collections.dockyard.platform.plugins.module_utils.daemon.config import ConfigError, duration


def is_duration(value):
    try:
        duration(value, "value")
    except ConfigError:
        return False
    return True


class TestModule:
    def tests(self):
        return {"duration": is_duration}
