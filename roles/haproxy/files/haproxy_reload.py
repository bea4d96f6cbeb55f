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

With --state-file, the helper first saves the current worker's `show servers
state` (master CLI: `@1 show servers state`, the newest worker) to that file,
written whole (temporary file, then rename). The configuration names the file
(`server-state-file`, `load-server-state-from-file global`): the master reads it
when it loads the new configuration, so a server its checks marked DOWN stays
DOWN in the new worker until a check passes, instead of starting UP and taking
requests. HAProxy applies a saved line by backend and server name and takes its
port over the configuration's, so only the lines of servers that the new
configuration (--config) has at the same address and port are kept. A state
that cannot be saved does not stop the reload: the helper says so on stderr
(the renderer logs a command's output), removes the file (a stale state must
not be loaded instead) and reloads; the new worker then starts every server UP,
as without the file.

Runs with the node's python3 standard library only. Exit status 0 when the
reload is confirmed (one line on stdout), 1 otherwise (one line on stderr
naming what was seen), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

DEFAULT_SOCKET = "/run/haproxy-master.sock"
DEFAULT_COMMAND = ("systemctl", "reload", "haproxy")
DEFAULT_TIMEOUT = 20.0  # below the renderer's command_timeout (30s), so that this helper says what it saw
POLL_INTERVAL = 0.1
REPLY_LIMIT = 1 << 20
STATE_LIMIT = 64 << 20  # a few hundred bytes per server
STATE_TIMEOUT = 5.0
STATE_FIELDS = 20  # HAProxy reads a line of format 1 with 20 to 25 fields
# `show servers state` starts with its format version (1 on 2.6) and the column names.
_STATE_HEAD = re.compile(r"1\n# be_id be_name srv_id srv_name ")

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


def ask_master(path: str, command: str, timeout: float, limit: int) -> str:
    """One command on the master CLI; its whole answer (at most limit bytes)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(max(timeout, 0.1))
        sock.connect(path)
        sock.sendall(command.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        size = 0
        while size <= limit:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    if size > limit:
        raise ValueError(f"the answer to {command} exceeds {limit} bytes")
    return b"".join(chunks).decode("utf-8", "replace")


def show_proc_once(path: str, timeout: float) -> Processes:
    return parse_show_proc(ask_master(path, "show proc", timeout, REPLY_LIMIT))


def show_proc(path: str, deadline: float) -> Processes:
    """`show proc`, retried until the deadline while the master re-executes (socket refused, reset, empty)."""
    while True:
        try:
            return show_proc_once(path, min(5.0, deadline - time.monotonic()))
        except (OSError, ValueError) as error:
            if time.monotonic() >= deadline:
                raise ReloadError(f"HAProxy's master CLI {path} did not answer show proc: {error}") from error
        time.sleep(POLL_INTERVAL)


def write_whole(path: str, text: str) -> None:
    """Writes text to path through a temporary file in its directory: a reader sees the old file or the new one."""
    directory, name = os.path.split(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def parse_address(text: str) -> tuple | None:
    """(address, port) of "10.0.0.1:80" or "[fd00::1]:80", the address in its canonical form; None otherwise."""
    if text.startswith("["):
        host, separator, port = text[1:].partition("]:")
    else:
        host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit():
        return None
    try:
        return str(ipaddress.ip_address(host)), str(int(port))
    except ValueError:
        return None


def configured_servers(config: str) -> dict:
    """{(backend, server): (address, port)} of the `server` lines in a configuration's backends."""
    servers = {}
    backend = None
    for raw in config.splitlines():
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        if not raw[0].isspace():  # a section header
            backend = words[1] if words[0] == "backend" and len(words) > 1 else None
        elif backend and words[0] == "server" and len(words) > 2:
            servers[(backend, words[1])] = parse_address(words[2])
    return servers


def state_for(answer: str, config: str) -> str:
    """The lines of `show servers state` whose server the new configuration has at the same address and port.

    HAProxy applies a saved line by backend and server name, and takes the saved port even when the
    configuration gives another one: a server whose instance moved must start afresh instead."""
    servers = configured_servers(config)
    lines = answer.splitlines()
    kept = lines[:2]  # the format version and the column names
    for line in lines[2:]:
        fields = line.split()
        if len(fields) < STATE_FIELDS:
            continue
        saved = parse_address(f"[{fields[4]}]:{fields[18]}")  # srv_addr, srv_port
        if saved is not None and servers.get((fields[1], fields[3])) == saved:  # be_name, srv_name
            kept.append(line)
    return "\n".join(kept) + "\n"


def save_server_state(path: str, state_file: str, config_file: str, deadline: float) -> None:
    """Saves the newest worker's `show servers state`, as far as config_file keeps its servers, to state_file;
    raises ReloadError saying why it could not."""
    try:
        answer = ask_master(path, "@1 show servers state", min(STATE_TIMEOUT, deadline - time.monotonic()), STATE_LIMIT)
    except (OSError, ValueError) as error:
        raise ReloadError(f"HAProxy's master CLI {path} did not answer show servers state: {error}") from error
    if not _STATE_HEAD.match(answer):
        said = " | ".join(answer.strip().splitlines()[:2])[:200]
        raise ReloadError(f"HAProxy's answer to show servers state is not a server state: {said or 'nothing'}")
    try:
        with open(config_file, encoding="utf-8", errors="replace") as stream:
            config = stream.read()
    except OSError as error:
        raise ReloadError(f"cannot read {config_file}: {error.strerror or error}") from error
    try:
        write_whole(state_file, state_for(answer, config))
    except OSError as error:
        raise ReloadError(f"cannot write {state_file}: {error.strerror or error}") from error


def keep_server_state(path: str, state_file: str, config_file: str, deadline: float) -> None:
    """Saves the server state for the reload; on failure says so on stderr and removes the previous file."""
    try:
        save_server_state(path, state_file, config_file, deadline)
    except ReloadError as error:
        try:
            os.unlink(state_file)
            removed = "removed the previous one"
        except FileNotFoundError:
            removed = "there was no previous one"
        except OSError as unlink_error:
            removed = f"could not remove the previous one either ({unlink_error.strerror}): the reload loads it"
        warn(
            f"server state not saved, reloading without it (every server starts UP until its checks say otherwise;"
            f" {state_file}: {removed}): {' '.join(str(error).split())}"
        )


def warn(message: str) -> None:
    """One line on stderr, which the renderer logs with the command's outcome."""
    print(message, file=sys.stderr)


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
        "--state-file",
        help="save the worker's server state to this file (the configuration's server-state-file) before reloading",
    )
    parser.add_argument("--config", help="the configuration the reload loads (needed with --state-file)")
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
    if args.state_file and not (os.path.isabs(args.state_file) and args.config):
        parser.error("--state-file must be an absolute path, and needs --config")
    command = args.command or list(DEFAULT_COMMAND)
    deadline = time.monotonic() + args.timeout
    try:
        before = show_proc(args.socket, deadline)
        if args.state_file:
            keep_server_state(args.socket, args.state_file, args.config, deadline)
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
