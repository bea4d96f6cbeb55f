# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The filter dockyard.platform.router_reports: the routers' reports from a Consul KV listing, read by the one parser
the renderer and the app module use."""

from __future__ import annotations

import base64
import binascii

from ansible.errors import AnsibleFilterError
from ansible_collections.dockyard.platform.plugins.module_utils.router.report import ReportError, parse_report

ROUTERS_FOLDER = "routers/"


def router_reports(entries, prefix="dockyard/"):
    """[{node, reloads, updated, error, unreadable}] from Consul's `?recurse` answer for <prefix>routers/.

    A key whose value does not parse is listed with `unreadable` saying why, never raised: one garbled report must
    not hide the others."""
    if not isinstance(prefix, str):
        raise AnsibleFilterError(f"router_reports: prefix must be a string, got {type(prefix).__name__}")
    if not isinstance(entries, list):
        raise AnsibleFilterError(f"router_reports: expected Consul's list of KV entries, got {type(entries).__name__}")
    folder = prefix + ROUTERS_FOLDER
    reports = []
    for entry in entries:
        key = entry.get("Key") if isinstance(entry, dict) else None
        node = key[len(folder) :] if isinstance(key, str) and key.startswith(folder) else ""
        if not node or "/" in node:
            continue
        try:
            value = base64.b64decode(entry.get("Value") or "", validate=True)
            report = parse_report(node, value)
        except (binascii.Error, ReportError) as error:
            reports.append({"node": node, "reloads": None, "updated": None, "error": None, "unreadable": str(error)})
            continue
        reports.append(
            {
                "node": report.node,
                "reloads": report.reloads,
                "updated": report.updated,
                "error": report.error or None,
                "unreadable": None,
            }
        )
    return reports


class FilterModule:
    def filters(self):
        return {"router_reports": router_reports}
