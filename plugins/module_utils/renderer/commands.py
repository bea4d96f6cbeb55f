# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running a template's check and command: shell string or argument list, with a timeout.

A check names the candidate file with %s (%% for a literal %), as Ansible's
validate options do; the render module's validate and the daemon's check
share it. {{candidate}}, the daemon's earlier spelling, is still read from
its configuration (upgrade_placeholder) and deprecated.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
from dataclasses import dataclass

PLACEHOLDER = "%s"
_SUBSTITUTION = re.compile(r"%([%s])")
_OLD_PLACEHOLDER = re.compile(r"\{\{ ?candidate ?\}\}")


@dataclass
class Outcome:
    ok: bool
    returncode: int | None
    output: str
    timed_out: bool = False

    def describe(self) -> str:
        if self.timed_out:
            return "timed out"
        tail = self.output.strip()[-500:]
        return "exit {}{}".format(self.returncode, (": " + tail) if tail else "")


def with_candidate(command, candidate: str):
    """Substitutes %s with the candidate file's path (quoted in a shell string) and %% with %."""

    def substitute(text: str, path: str) -> str:
        return _SUBSTITUTION.sub(lambda match: "%" if match.group(1) == "%" else path, text)

    if isinstance(command, list):
        return [substitute(item, candidate) for item in command]
    return substitute(command, shlex.quote(candidate))


def names_candidate(command) -> bool:
    """Whether command holds the placeholder %s."""
    items = command if isinstance(command, list) else [command]
    return any(match.group(1) == "s" for item in items for match in _SUBSTITUTION.finditer(item))


def upgrade_placeholder(command):
    """A command in the earlier spelling ({{candidate}}) in the current one (%s), meaning the same; others as given."""
    if command is None:
        return None
    items = command if isinstance(command, list) else [command]
    if not any(_OLD_PLACEHOLDER.search(item) for item in items):
        return command
    upgraded = [_OLD_PLACEHOLDER.sub(PLACEHOLDER, item.replace("%", "%%")) for item in items]
    return upgraded if isinstance(command, list) else upgraded[0]


def run(command, timeout: float, environ: dict | None = None) -> Outcome:
    """Runs command; its whole process group is killed when it outlives the timeout."""
    argv = command if isinstance(command, list) else ["/bin/sh", "-c", command]
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=environ,
            start_new_session=True,
        )
    except OSError as error:
        return Outcome(False, None, f"cannot start {argv[0]}: {error.strerror}")
    try:
        output = process.communicate(timeout=timeout or None)[0]
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output = process.communicate()[0]
        return Outcome(False, None, output.decode("utf-8", "replace"), timed_out=True)
    return Outcome(process.returncode == 0, process.returncode, output.decode("utf-8", "replace"))
