# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files: would a render change the live file, and render-check-swap, the one way a render goes live.

swap() is what the daemon's runner and the render module both call: unless
the live file already holds the contents, a candidate file is written in the
destination's own directory (so the swap is a rename on one filesystem),
fsynced and given its owner, group and mode; the check runs on it (%s
stands for its path); only if it passes is it renamed over the live file,
and the directory fsynced. A failed check leaves the live file as it was.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import tempfile
from dataclasses import dataclass

from . import commands


@dataclass
class Live:
    """The live file as it is now: contents (None when absent) and permissions."""

    contents: bytes | None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


def read_live(destination: str) -> Live:
    try:
        with open(destination, "rb") as handle:
            status = os.fstat(handle.fileno())
            return Live(handle.read(), status.st_mode & 0o7777, status.st_uid, status.st_gid)
    except FileNotFoundError:
        return Live(None)


def would_render(contents: bytes, live: Live) -> bool:
    """True when writing contents would change the live file's bytes."""
    return live.contents != contents


def resolve_owner(user, group) -> tuple:
    uid = -1 if user in (None, "") else (user if isinstance(user, int) else pwd.getpwnam(str(user)).pw_uid)
    gid = -1 if group in (None, "") else (group if isinstance(group, int) else grp.getgrnam(str(group)).gr_gid)
    return uid, gid


def write_candidate(destination: str, contents: bytes, mode=None, user=None, group=None, live: Live | None = None):
    """Writes contents to a new file beside destination and returns its path.

    Without a mode the candidate keeps the live file's mode (0644 for a new file);
    without owner/group it keeps the live file's (the process's for a new file).
    """
    directory = os.path.dirname(os.path.abspath(destination))
    os.makedirs(directory, exist_ok=True)
    handle, path = tempfile.mkstemp(prefix=f".{os.path.basename(destination)}.", suffix=".candidate", dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(contents)
            stream.flush()
            uid, gid = resolve_owner(user, group)
            if live is not None and live.contents is not None:
                uid = live.uid if uid == -1 else uid
                gid = live.gid if gid == -1 else gid
            may_chown = os.geteuid() == 0 or (uid in (-1, os.geteuid()) and gid in (-1, os.getegid()))
            if (uid != -1 or gid != -1) and may_chown:
                os.fchown(stream.fileno(), uid, gid)
            if mode is None:
                mode = live.mode if live is not None and live.mode is not None else 0o644
            os.fchmod(stream.fileno(), mode)
            os.fsync(stream.fileno())
    except BaseException:
        discard(path)
        raise
    return path


def commit(candidate: str, destination: str) -> None:
    """Atomically replaces destination with the candidate."""
    os.rename(candidate, destination)
    _sync_directory(os.path.dirname(os.path.abspath(destination)))


def discard(candidate: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(candidate)


def restore(destination: str, previous: Live) -> None:
    """Puts the previous live file back (or removes destination if there was none)."""
    if previous.contents is None:
        discard(destination)
        _sync_directory(os.path.dirname(os.path.abspath(destination)))
        return
    candidate = write_candidate(destination, previous.contents, previous.mode, previous.uid, previous.gid)
    commit(candidate, destination)


class CommitError(OSError):
    """The checked candidate could not replace the live file."""


@dataclass
class Swap:
    """What swap() did: status is unchanged, rendered or check failed; checked is the check's outcome, if one ran."""

    status: str
    live: Live
    checked: commands.Outcome | None = None


def check_candidate(
    destination: str, contents: bytes, check, timeout=None, mode=None, user=None, group=None, live=None
):
    """The check's outcome on contents written as a candidate beside destination; the candidate is removed after."""
    candidate = write_candidate(destination, contents, mode, user, group, live)
    try:
        if not check:
            return commands.Outcome(True, 0, "")
        return commands.run(commands.with_candidate(check, candidate), timeout)
    finally:
        discard(candidate)


def swap(destination: str, contents: bytes, check=None, timeout=None, mode=None, user=None, group=None, live=None):
    """Render, check, swap: destination holds contents afterwards unless the check fails on them.

    check is a shell string or an argument list naming the candidate with %s
    (run with timeout seconds, None for none); live is the live file when
    the caller has read it already. Raises OSError or KeyError (an unknown
    user or group) when the candidate cannot be written, CommitError when it
    cannot replace the live file; the candidate never stays behind.
    """
    live = read_live(destination) if live is None else live
    if not would_render(contents, live):
        return Swap("unchanged", live)
    candidate = write_candidate(destination, contents, mode, user, group, live)
    checked = None
    try:
        if check:
            checked = commands.run(commands.with_candidate(check, candidate), timeout)
            if not checked.ok:
                return Swap("check failed", live, checked)
        try:
            commit(candidate, destination)
        except OSError as error:
            raise CommitError(error.errno, error.strerror, destination) from None
    finally:
        discard(candidate)
    return Swap("rendered", live, checked)


def _sync_directory(directory: str) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
