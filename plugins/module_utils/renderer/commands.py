# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running a template's check and command: shell string or argument list, with a timeout."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from dataclasses import dataclass

_PLACEHOLDERS = ("{{candidate}}", "{{ candidate }}")


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
    """Substitutes {{candidate}} with the candidate file's path (quoted in a shell string)."""
    if isinstance(command, list):
        result = list(command)
        for placeholder in _PLACEHOLDERS:
            result = [item.replace(placeholder, candidate) for item in result]
        return result
    for placeholder in _PLACEHOLDERS:
        command = command.replace(placeholder, shlex.quote(candidate))
    return command


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
