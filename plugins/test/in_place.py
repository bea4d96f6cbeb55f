# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The test dockyard.platform.in_place: is a path on the host as a task would leave it, by one find's results."""

from __future__ import annotations

import hashlib


def in_place(path, found, content=None, mode=None, owner=None, group=None, directory=False):
    """True when find's results hold path with that content (by SHA-1), mode, owner and group (each when given).

    found is a registered ansible.builtin.find result (or its files list), run with get_checksum and file_type any.
    Anything missing, different or unreadable is False: the caller's task then runs and decides.
    """
    files = found.get("files") if isinstance(found, dict) else found
    if not isinstance(path, str) or not isinstance(files, list):
        return False
    entry = next((entry for entry in files if isinstance(entry, dict) and entry.get("path") == path), None)
    if entry is None or bool(entry.get("isdir")) != bool(directory):
        return False
    if not directory and not entry.get("isreg"):
        return False  # a symbolic link or a special file: let the task replace it
    wanted = {"mode": mode, "pw_name": owner, "gr_name": group}
    if any(value is not None and entry.get(key) != value for key, value in wanted.items()):
        return False
    if content is not None:
        if not isinstance(content, str):
            return False
        return entry.get("checksum") == hashlib.sha1(content.encode("utf-8")).hexdigest()
    return True


class TestModule:
    def tests(self):
        return {"in_place": in_place}
