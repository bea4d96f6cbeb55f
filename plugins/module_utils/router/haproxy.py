# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HAProxy's live server state, read through the master CLI and parsed strictly.

HAProxy runs master-worker with a master CLI socket (-S, /run/haproxy-master.sock
on a router). On it:
- `show proc` gives the master's reload counter and its workers; a worker of the
  current generation has survived no reload (its <reloads> column is 0);
- `@!<pid> show servers state` asks worker <pid> for its servers, in the format
  of a server-state file: a version line `1`, a `# ` header naming the columns,
  one line per server, fields separated by one space (HAProxy management guide,
  section 9.3 "show servers state"). Columns are found by their header name, so
  columns a later HAProxy adds are ignored.

A snapshot asks `show proc`, the current worker's `show servers state`, then
`show proc` again: the state belongs to configuration generation <reloads> only
when the master counted no reload in between and the worker is still the
current one; otherwise it is asked again.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

# srv_op_state and srv_admin_state as the management guide (section 9.3) documents them, from HAProxy's
# include/haproxy/server-t.h (enum srv_state, enum srv_admin):
#   srv_op_state     0 SRV_ST_STOPPED (down), 1 SRV_ST_STARTING (warming up: up, throttled by slowstart),
#                    2 SRV_ST_RUNNING (fully up), 3 SRV_ST_STOPPING (up but soft-stopping, e.g. a 404 under
#                    http-check disable-on-404: only persistent sessions, the stats page's NOLB)
#   srv_admin_state  a mask: 0x01 FMAINT (forced into maintenance), 0x02 IMAINT (inherited from a tracked
#                    server), 0x04 CMAINT (`disabled` in the configuration), 0x08 FDRAIN (forced drain),
#                    0x10 IDRAIN (inherited drain), 0x20 RMAINT (address resolution failed), 0x40 HMAINT (FQDN
#                    set from the CLI: a marker, not a maintenance)
OP_STOPPED, OP_STARTING, OP_RUNNING, OP_STOPPING = 0, 1, 2, 3
MAINT_FLAGS = 0x01 | 0x02 | 0x04 | 0x20
DRAIN_FLAGS = 0x08 | 0x10
ADMIN_MASK = 0x7F
MAX_WEIGHT = 256  # HAProxy's largest server weight

STATE_VERSION = "1"
REQUIRED_COLUMNS = ("be_name", "srv_name", "srv_addr", "srv_op_state", "srv_admin_state", "srv_uweight", "srv_port")
REPLY_LIMIT = 8 * 1024 * 1024
READ_ATTEMPTS = 3

# A proxy or server name as HAProxy accepts one: letters, digits, '.', '_', '-' and ':'.
NAME = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_COLUMN = re.compile(r"[a-z_]{1,40}")
_NUMBER = re.compile(r"[0-9]{1,10}")
_ADDRESS = re.compile(r"[0-9A-Fa-f:.]{2,39}")
_MASTER = re.compile(
    r"(?P<pid>[0-9]{1,10})\s+master\s+(?P<reloads>[0-9]{1,10})(?:\s+\[failed:\s*[0-9]{1,10}\])?(?:\s.*)?"
)
_WORKER = re.compile(r"(?P<pid>[0-9]{1,10})\s+worker\s+(?P<reloads>[0-9]{1,10})(?:\s.*)?")


class HaproxyError(Exception):
    """HAProxy's master CLI could not be asked (socket missing, refused, reset, timed out, reloading)."""


class ParseError(ValueError):
    """HAProxy's answer is not in the expected format; the message names the line (number and text)."""

    def __init__(self, number: int, line: str, reason: str):
        super().__init__(f"line {number}: {reason}: {shown(line)}")
        self.number = number
        self.line = line


def shown(text: str) -> str:
    """A line for a message: its repr, cut short."""
    value = repr(text)
    return value if len(value) <= 120 else value[:117] + "..."


def server_state(op_state: int, admin_state: int) -> str:
    """UP, DOWN, MAINT or DRAIN: what a deployer needs to know about a server."""
    if admin_state & MAINT_FLAGS:
        return "MAINT"  # takes no traffic, whatever its checks say
    if op_state == OP_STOPPED:
        return "DOWN"
    if admin_state & DRAIN_FLAGS or op_state == OP_STOPPING:
        return "DRAIN"  # up, but takes no new sessions
    return "UP"  # running, or starting (slowstart already sends it traffic)


@dataclass(frozen=True)
class Server:
    addr: str
    port: int
    state: str
    weight: int


def _lines(text: str) -> list:
    """The answer's lines without the blank line that ends it; a control character is a ParseError."""
    lines = text.split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        if any(ord(char) < 32 or ord(char) == 127 for char in line):
            raise ParseError(number, line, "control character")
    return lines


def _number(value: str, number: int, line: str, column: str, limit: int) -> int:
    if not _NUMBER.fullmatch(value) or int(value) > limit:
        raise ParseError(number, line, f"{column}: expected a number 0-{limit}, got {shown(value)}")
    return int(value)


def _columns(lines: list) -> dict:
    if not lines or lines[0] != STATE_VERSION:
        raise ParseError(1, lines[0] if lines else "", f"expected the server-state format version {STATE_VERSION}")
    if len(lines) < 2 or not lines[1].startswith("# "):
        raise ParseError(2, lines[1] if len(lines) > 1 else "", "expected the header naming the columns")
    names = lines[1][2:].split(" ")
    if not all(_COLUMN.fullmatch(name) for name in names) or len(set(names)) != len(names):
        raise ParseError(2, lines[1], "expected distinct column names separated by one space")
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise ParseError(2, lines[1], "missing column(s) " + ", ".join(missing))
    return {name: index for index, name in enumerate(names)}


def _server(fields: list, column: dict, number: int, line: str) -> tuple:
    backend, name = fields[column["be_name"]], fields[column["srv_name"]]
    for what, value in (("be_name", backend), ("srv_name", name)):
        if not NAME.fullmatch(value):
            raise ParseError(number, line, f"{what}: expected letters, digits, '.', '_', '-' or ':' (at most 100)")
    addr = fields[column["srv_addr"]]
    try:
        if not _ADDRESS.fullmatch(addr):
            raise ValueError
        addr = str(ipaddress.ip_address(addr))
    except ValueError:
        raise ParseError(number, line, f"srv_addr: expected an IP address, got {shown(addr)}") from None
    op_state = _number(fields[column["srv_op_state"]], number, line, "srv_op_state", OP_STOPPING)
    admin_state = _number(fields[column["srv_admin_state"]], number, line, "srv_admin_state", ADMIN_MASK)
    weight = _number(fields[column["srv_uweight"]], number, line, "srv_uweight", MAX_WEIGHT)
    port = _number(fields[column["srv_port"]], number, line, "srv_port", 65535)
    return backend, name, Server(addr, port, server_state(op_state, admin_state), weight)


def parse_servers_state(text: str) -> dict:
    """{backend: {server: Server}} from `show servers state`; raises ParseError naming the line."""
    lines = _lines(text)
    column = _columns(lines)
    backends = {}
    for number, line in enumerate(lines[2:], 3):
        fields = line.split(" ")
        if len(fields) != len(column):
            raise ParseError(number, line, f"expected {len(column)} fields as the header names, got {len(fields)}")
        backend, name, server = _server(fields, column, number, line)
        servers = backends.setdefault(backend, {})
        if name in servers:
            raise ParseError(number, line, f"server {backend}/{name} listed twice")
        servers[name] = server
    return backends


@dataclass(frozen=True)
class Processes:
    """The master CLI's `show proc`: the master's pid and reload counter, and (pid, reloads survived) per worker."""

    master_pid: int
    reloads: int
    workers: tuple

    def current_worker(self) -> int:
        """The worker of the current generation; HaproxyError while there is none (a reload in flight)."""
        current = [pid for pid, survived in self.workers if survived == 0]
        if len(current) != 1:
            raise HaproxyError(f"HAProxy's master {self.master_pid} shows {len(current)} current workers, not one")
        return current[0]


def parse_show_proc(text: str) -> Processes:
    """Processes from `show proc`; raises ParseError naming the line. Programs (`# programs`) are not read."""
    master, workers, section = None, [], "master"
    lines = _lines(text)
    for number, line in enumerate(lines, 1):
        if line.startswith("#"):
            section = {"# workers": "workers", "# programs": "programs"}.get(line.strip(), section)
            continue
        if not line.strip() or section == "programs":
            continue
        found = (_MASTER if section == "master" else _WORKER).fullmatch(line.strip())
        if found is None or (section == "master" and master is not None):
            raise ParseError(number, line, f"expected a {section[:6]} line of show proc")
        if section == "master":
            master = found
        else:
            workers.append((int(found["pid"]), int(found["reloads"])))
    if master is None:
        raise ParseError(1, lines[0] if lines else "", "show proc has no master line")
    return Processes(int(master["pid"]), int(master["reloads"]), tuple(workers))


@dataclass(frozen=True)
class Snapshot:
    """One worker's servers and the configuration generation (the master's reload counter) they belong to."""

    reloads: int
    worker: int
    backends: dict


class MasterCLI:
    def __init__(self, path: str, timeout: float = 5.0):
        self.path = path
        self.timeout = timeout

    def ask(self, command: str) -> str:
        """One command on a new connection; the whole answer."""
        reply = b""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.path)
                sock.sendall(command.encode("ascii") + b"\n")
                sock.shutdown(socket.SHUT_WR)
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
                    if len(reply) > REPLY_LIMIT:
                        raise HaproxyError(f"HAProxy's answer to {command!r} is longer than {REPLY_LIMIT} bytes")
        except OSError as error:
            raise HaproxyError(f"HAProxy's master CLI {self.path}: {error.strerror or error}") from None
        try:
            return reply.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ParseError(1, reply[:120].decode("utf-8", "replace"), f"not UTF-8 ({error.reason})") from None

    def snapshot(self) -> Snapshot:
        """The current worker's servers with the generation they belong to; raises HaproxyError or ParseError."""
        for _attempt in range(READ_ATTEMPTS):
            before = parse_show_proc(self.ask("show proc"))
            worker = before.current_worker()
            state = self.ask(f"@!{worker} show servers state")
            after = parse_show_proc(self.ask("show proc"))
            # Checked before the state is parsed: a worker gone in a reload answers with an error, not a state.
            if (after.master_pid, after.reloads) != (before.master_pid, before.reloads):
                continue
            if after.current_worker() != worker:
                continue
            return Snapshot(before.reloads, worker, parse_servers_state(state))
        raise HaproxyError(f"HAProxy reloaded during each of {READ_ATTEMPTS} reads of its server state")
