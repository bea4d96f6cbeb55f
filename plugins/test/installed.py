# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The test dockyard.platform.installed: are these apt package specs all installed, by package_facts."""

from __future__ import annotations

import fnmatch
import re

# What ansible.builtin.apt takes as a package to be present: name[:arch][=version], the version may end in *.
_SPEC = re.compile(r"(?P<name>[a-z0-9][a-z0-9+.-]*)(?::(?P<arch>[a-z0-9-]+))?(?:=(?P<version>[A-Za-z0-9.+~:*-]+))?")


def _installed(spec, packages) -> bool:
    match = _SPEC.fullmatch(spec) if isinstance(spec, str) else None
    if match is None:
        return False  # not a spec this test knows: let apt decide
    for package in packages.get(match["name"]) or []:
        if match["arch"] and package.get("arch") != match["arch"]:
            continue
        if match["version"] is None or fnmatch.fnmatchcase(str(package.get("version")), match["version"]):
            return True
    return False


def all_installed(specs, packages=None):
    """True when package_facts' packages hold every spec; False when anything is missing or unknown."""
    if isinstance(specs, str):
        specs = [specs]
    if not isinstance(packages, dict) or not isinstance(specs, (list, tuple)):
        return False
    return all(_installed(spec, packages) for spec in specs)


class TestModule:
    def tests(self):
        return {"installed": all_installed}
