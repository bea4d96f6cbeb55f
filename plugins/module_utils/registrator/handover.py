# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A restart that keeps the node's instances: the stopping run hands its Consul session to the next one.

A stop destroys the session, and Consul deletes the node's instances with it: right when the daemon stops
for good, but a restart (new code, new configuration) would take every instance of the node out of the
routers until the next run registers them again. So when systemd is restarting the daemon's unit (its job
for the unit is a restart, not a stop), the stopping run leaves the session alive and writes its ID to
<state_dir>/session-handover.json; the next run renews it (the instances never leave Consul) and takes it
over, or, when it has ended meanwhile, creates a new one. A handover is only taken by a run with the same
session name and KV prefix: a run configured for another node or prefix starts afresh.

- restart_pending(): whether systemd is restarting the unit this process runs in.
- HandoverStore: the file, written atomically (0600), read once and removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess

from .state_file import write_json

CGROUP_FILE = "/proc/self/cgroup"
_UNIT = re.compile(r"[A-Za-z0-9:_.@\\-]{1,255}\.service")
_SESSION = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_JOB_LIST_TIMEOUT = 5.0


class HandoverError(ValueError):
    """The handover file cannot be read back; the message names the file and what is wrong."""


def unit_of(cgroup: str) -> str | None:
    """The systemd service this process runs in, from /proc/self/cgroup's text (None outside a service)."""
    for line in cgroup.splitlines():
        path = line.split(":", 2)[-1]
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if _UNIT.fullmatch(name):
            return name
    return None


def job_of(job_list: str, unit: str) -> str | None:
    """The type of systemd's job for unit (start, stop, restart, ...) in `systemctl list-jobs --plain` output."""
    for line in job_list.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == unit:
            return fields[2]
    return None


def restart_pending() -> bool:
    """Whether systemd is restarting this process's unit. Anything unknown (no systemd, no answer) says no:
    the session is then destroyed, as on any stop."""
    try:
        with open(CGROUP_FILE, encoding="utf-8") as handle:
            unit = unit_of(handle.read())
    except OSError:
        return False
    if unit is None:
        return False
    try:
        listed = subprocess.run(
            ["systemctl", "list-jobs", "--no-legend", "--plain", "--full"],
            capture_output=True,
            text=True,
            timeout=_JOB_LIST_TIMEOUT,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return job_of(listed, unit) == "restart"


class HandoverStore:
    """<state_dir>/session-handover.json: the session a stopping run left to the next one."""

    def __init__(self, state_dir: str):
        self.path = os.path.join(state_dir, "session-handover.json")

    def save(self, session: str, name: str, kv_prefix: str) -> None:
        """Writes the file atomically, readable by root only; raises OSError."""
        write_json(self.path, {"session": session, "name": name, "kv_prefix": kv_prefix})

    def take(self, name: str, kv_prefix: str) -> str | None:
        """The session handed over to a run with this session name and KV prefix, if any; the file is removed
        either way, so a handover is taken at most once. Raises HandoverError for a file that is not one."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise HandoverError(f"{self.path}: cannot read it: {error.strerror}") from None
        finally:
            self._remove()
        try:
            document = json.loads(text)
        except ValueError as error:
            raise HandoverError(f"{self.path}: not JSON: {error}") from None
        if (
            not isinstance(document, dict)
            or set(document) != {"session", "name", "kv_prefix"}
            or not all(isinstance(value, str) for value in document.values())
            or not _SESSION.fullmatch(document["session"])
        ):
            raise HandoverError(f"{self.path}: expected an object with a session ID, its name and the KV prefix")
        if (document["name"], document["kv_prefix"]) != (name, kv_prefix):
            return None
        return document["session"]

    def _remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
