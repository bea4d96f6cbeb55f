# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reload HAProxy and confirm that the new configuration went live.

`systemctl reload haproxy` only checks the file and sends SIGUSR2 to the master:
it exits 0 even when the master then fails to load the file (a port another
process holds, for example) and keeps the old worker running the old file.
This helper reads the master CLI's `show proc` before, runs the reload command,
waits (bounded) until the master's reload counter moved, and exits 0 only when
the reload took: no failed reload counted and a worker of the new generation.

What HAProxy 2.6's master CLI shows (bookworm), after a good reload:

    #<PID>          <type>          <reloads>       <uptime>        <version>
    12196           master          1 [failed: 0]   0d00h00m03s     2.6.12-1+deb12u4
    # workers
    12408           worker          0               0d00h00m01s     2.6.12-1+deb12u4

and after a reload whose file cannot bind:

    12196           master          2 [failed: 1]   0d00h00m08s     2.6.12-1+deb12u4
    # workers
    12408           worker          1               0d00h00m06s     2.6.12-1+deb12u4

A worker's <reloads> counts the reloads it has survived, so a worker of the new
generation shows 0; `failed` counts consecutive failed reloads and falls back to
0 on the next good one. While the master re-executes, its socket refuses or
resets connections: reads are retried until the deadline.

Runs with the node's python3 standard library only. Exit status 0 when the
reload is confirmed (one line on stdout), 1 otherwise (one line on stderr
naming what was seen), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import re
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

DEFAULT_SOCKET = "/run/haproxy-master.sock"
DEFAULT_COMMAND = ("systemctl", "reload", "haproxy")
DEFAULT_TIMEOUT = 20.0  # below the renderer's command_timeout (30s), so that this helper says what it saw
POLL_INTERVAL = 0.1
REPLY_LIMIT = 1 << 20

_MASTER = re.compile(r"(?P<pid>[0-9]+)\s+master\s+(?P<reloads>[0-9]+)(?:\s+\[failed:\s*(?P<failed>[0-9]+)\])?(?:\s.*)?")
_WORKER = re.compile(r"(?P<pid>[0-9]+)\s+worker\s+(?P<reloads>[0-9]+)(?:\s.*)?")


class ReloadError(Exception):
    """The reload could not be confirmed; the message says what was seen."""


@dataclass(frozen=True)
class Processes:
    """The master CLI's `show proc`, typed."""

    master_pid: int
    reloads: int
    failed: int | None  # None when this HAProxy does not print [failed: n]
    workers: tuple  # ((pid, reloads survived), ...)

    def new_workers(self) -> list:
        """Workers of the current generation (they have survived no reload)."""
        return [pid for pid, survived in self.workers if survived == 0]

    def describe(self) -> str:
        failed = "?" if self.failed is None else self.failed
        workers = ", ".join(f"{pid} (survived {survived})" for pid, survived in self.workers) or "none"
        return f"master {self.master_pid} reloads {self.reloads} failed {failed}, workers {workers}"


def parse_show_proc(text: str) -> Processes:
    """Parses `show proc`; raises ValueError when it has no master line."""
    master = None
    workers = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        found = _MASTER.fullmatch(line)
        if found and master is None:
            master = found
            continue
        found = _WORKER.fullmatch(line)
        if found:
            workers.append((int(found["pid"]), int(found["reloads"])))
    if master is None:
        raise ValueError("no master line in show proc: " + " | ".join(text.strip().splitlines()[:4])[:200])
    return Processes(
        master_pid=int(master["pid"]),
        reloads=int(master["reloads"]),
        failed=None if master["failed"] is None else int(master["failed"]),
        workers=tuple(workers),
    )


def show_proc_once(path: str, timeout: float) -> Processes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(max(timeout, 0.1))
        sock.connect(path)
        sock.sendall(b"show proc\n")
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while len(reply) < REPLY_LIMIT:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    return parse_show_proc(reply.decode("utf-8", "replace"))


def show_proc(path: str, deadline: float) -> Processes:
    """`show proc`, retried until the deadline while the master re-executes (socket refused, reset, empty)."""
    while True:
        try:
            return show_proc_once(path, min(5.0, deadline - time.monotonic()))
        except (OSError, ValueError) as error:
            if time.monotonic() >= deadline:
                raise ReloadError(f"HAProxy's master CLI {path} did not answer show proc: {error}") from error
        time.sleep(POLL_INTERVAL)


def run_command(command: list, deadline: float) -> None:
    try:
        ran = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=max(deadline - time.monotonic(), 0.1),
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise ReloadError(f"reload command {shlex.join(command)} did not finish in time") from error
    except OSError as error:
        raise ReloadError(f"cannot run reload command {shlex.join(command)}: {error.strerror}") from error
    if ran.returncode != 0:
        said = (ran.stderr.strip() or ran.stdout.strip()).splitlines()
        tail = f": {said[-1]}" if said else ""
        raise ReloadError(f"reload command {shlex.join(command)} exited {ran.returncode}{tail}")


def confirm(before: Processes, path: str, deadline: float) -> Processes:
    """Waits until the master counted a reload; returns show proc then, or raises saying what it saw."""
    seen = before
    while time.monotonic() < deadline:
        seen = show_proc(path, deadline)
        # A new master pid means HAProxy was restarted meanwhile: its counters started again.
        moved = seen.master_pid != before.master_pid or seen.reloads > before.reloads
        if moved:
            if seen.failed:
                old = ", ".join(str(pid) for pid, _survived in seen.workers) or "none"
                raise ReloadError(
                    f"reload failed: HAProxy's master {seen.master_pid} counts {seen.failed} failed reload(s)"
                    f" (reloads {before.reloads} -> {seen.reloads}), the new configuration is not live and the"
                    f" previous worker(s) ({old}) keep the old one; the cause is in HAProxy's log"
                    f" (journalctl --unit haproxy); show proc: {seen.describe()}"
                )
            if seen.new_workers():
                return seen
        time.sleep(POLL_INTERVAL)
    if seen.master_pid == before.master_pid and seen.reloads == before.reloads:
        raise ReloadError(
            f"reload not seen: HAProxy's master {seen.master_pid} still counts {seen.reloads} reload(s);"
            f" show proc: {seen.describe()}"
        )
    raise ReloadError(
        f"reload not confirmed: no worker of the new generation (every worker survived a reload); show proc:"
        f" {seen.describe()}"
    )


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Reload HAProxy and confirm on the master CLI that the new configuration went live."
    )
    parser.add_argument("--socket", default=DEFAULT_SOCKET, help=f"the master CLI socket (default {DEFAULT_SOCKET})")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds for the whole reload (default %(default)s)"
    )
    parser.add_argument(
        "command",
        nargs="*",
        help=f"the reload command, after -- (default: {shlex.join(DEFAULT_COMMAND)})",
    )
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    command = args.command or list(DEFAULT_COMMAND)
    deadline = time.monotonic() + args.timeout
    try:
        before = show_proc(args.socket, deadline)
        run_command(command, deadline)
        after = confirm(before, args.socket, deadline)
    except ReloadError as error:
        print(" ".join(str(error).split()), file=sys.stderr)
        return 1
    print(
        f"reload confirmed: master {after.master_pid} reloads {before.reloads} -> {after.reloads}, failed 0,"
        f" new worker(s) {', '.join(str(pid) for pid in after.new_workers())}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
