# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files: would a render change the live file, and render-check-swap, the one way a render goes live.

swap() is what the daemon's runner and the render module both call: unless
the live file already holds the contents, a candidate file is written in the
destination's own directory (so the swap is a rename on one filesystem),
fsynced and given its owner, group and mode; the check runs on it (%s
stands for its path); only if it passes is it renamed over the live file,
and the directory fsynced. A failed check leaves the live file as it was.
When the live file holds the contents but not the configured owner, group or
mode, those are set on it in place: the contents are not written again.
An owner or group that cannot be given (not root) is an error naming the
file, never skipped. Candidates a crash left behind are removed at start
(remove_stale_candidates()).
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import stat
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


class OwnershipError(PermissionError):
    """The configured (or the live file's) owner or group cannot be given to a file: the process is not root."""


def _chown(descriptor_or_path, destination: str, uid: int, gid: int, user, group) -> None:
    """Gives uid/gid (-1: keep); an OwnershipError names the file, the owner and group, and who we run as."""
    try:
        os.chown(descriptor_or_path, uid, gid)
    except PermissionError as error:
        wanted = " and ".join(
            f"{what} {name}" if name not in (None, "") else f"{what} {number} (the live file's)"
            for what, name, number in (("owner", user, uid), ("group", group, gid))
            if number != -1
        )
        raise OwnershipError(
            f"cannot give {destination} {wanted}: {error.strerror} (running as uid {os.geteuid()}, not root)"
        ) from None


def _wanted_owner(user, group, live: Live | None) -> tuple:
    """(uid, gid) a file at the destination should have: the configured ones, else the live file's, else -1 (ours)."""
    uid, gid = resolve_owner(user, group)
    if live is not None and live.contents is not None:
        uid = live.uid if uid == -1 else uid
        gid = live.gid if gid == -1 else gid
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
            uid, gid = _wanted_owner(user, group, live)
            created = os.fstat(stream.fileno())
            uid = -1 if uid == created.st_uid else uid
            gid = -1 if gid == created.st_gid else gid
            if uid != -1 or gid != -1:
                _chown(stream.fileno(), destination, uid, gid, user, group)
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
    """What swap() did: status is unchanged, rendered, attributes (owner, group or mode set, contents kept) or
    check failed; checked is the check's outcome, if one ran."""

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
        return Swap("attributes" if set_attributes(destination, live, mode, user, group) else "unchanged", live)
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


def set_attributes(destination: str, live: Live, mode=None, user=None, group=None) -> bool:
    """Gives the live file the configured owner, group and mode where it differs; True if it changed anything.

    Only what is configured counts (None keeps the live file's). Owner and
    group go first, since a chown may clear set-id bits that the mode sets.
    """
    uid, gid = resolve_owner(user, group)
    chown_uid = -1 if uid in (-1, live.uid) else uid
    chown_gid = -1 if gid in (-1, live.gid) else gid
    new_mode = None if mode is None or mode == live.mode else mode
    if chown_uid == chown_gid == -1 and new_mode is None:
        return False
    if chown_uid != -1 or chown_gid != -1:
        _chown(destination, destination, chown_uid, chown_gid, user, group)
    if new_mode is not None:
        os.chmod(destination, new_mode)
    return True


_CANDIDATE_SUFFIX = re.compile(r"[a-z0-9_]{8}\.candidate")  # tempfile.mkstemp's 8 random characters, our suffix


def remove_stale_candidates(destination: str) -> list:
    """Removes the candidates a crash left beside destination (only write_candidate()'s names); returns their paths."""
    directory = os.path.dirname(os.path.abspath(destination))
    prefix = f".{os.path.basename(destination)}."
    removed = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for name in names:
        if not name.startswith(prefix) or not _CANDIDATE_SUFFIX.fullmatch(name[len(prefix) :]):
            continue
        path = os.path.join(directory, name)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.unlink(path)
                removed.append(path)
    return sorted(removed)


def _sync_directory(directory: str) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
