# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app module's deployment lock and ledger, in ZooKeeper.

Layout under the chroot (default `/dockyard`):
- `<chroot>/locks/<app>`: an ephemeral znode held for a whole deployment; its
  data names the holder (JSON {"deployment", "host", "user", "started"}). It
  vanishes with its session, so a crashed deployer's lock frees itself once
  ZooKeeper expires that session.
- `<chroot>/deployments/<app>/<sequence>`: one persistent sequential znode per
  deployment, JSON (see Entry), rewritten as the deployment progresses with
  compare-and-set on the znode's version. At most `max_entries` per app are
  kept; the oldest go first, but never the current successful one nor a
  running one.

Plain Python over kazoo, only the API that Debian's python3-kazoo 2.9.0 has.
Nothing here writes before the connection is up: an unreachable ZooKeeper is an
error naming the servers, raised before anything changed.

A connection that drops (a member restarting, a leader election) does not end
a deployment: the session, and with it the lock, lives on for the session
timeout, and kazoo moves to another member. A request cut by the drop is sent
again once the same session is back; a cut write is first read back, since it
may have taken effect before the answer was lost.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import math
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone

try:
    from kazoo.client import KazooClient
    from kazoo.exceptions import (
        BadVersionError,
        ConnectionLoss,
        NoAuthError,
        NodeExistsError,
        NoNodeError,
        SessionExpiredError,
    )
    from kazoo.handlers.threading import KazooTimeoutError
    from kazoo.protocol.states import KazooState
    from kazoo.security import make_digest_acl
except ImportError as error:
    KAZOO_IMPORT_ERROR: ImportError | None = error
else:
    KAZOO_IMPORT_ERROR = None

from ..daemon.routing import RouteError, _shown, parse_address, parse_host, parse_name, parse_port
from .spec import MAX_SPEC_BYTES

DEFAULT_CHROOT = "/dockyard"
DEFAULT_MAX_ENTRIES = 50
MAX_SERVERS = 32
MAX_HOSTS_TEXT = 2048
MAX_CHROOT_SEGMENTS = 8
# ZooKeeper drops the connection of a client that writes more than its
# jute.maxbuffer (1 MiB by default); an entry stays far below that.
MAX_ENTRY_BYTES = 256 * 1024
MAX_STEPS = 200
MAX_STEP_SECONDS = 7 * 86400
MAX_TEXT = 200
MAX_ERROR_TEXT = 2000
MAX_HOLDER_BYTES = 4 * 1024

OUTCOMES = ("running", "succeeded", "failed", "rolled back")
FINAL_OUTCOMES = OUTCOMES[1:]
ENTRY_KEYS = (
    "deployment",
    "version",
    "image",
    "spec",
    "user",
    "host",
    "started",
    "ended",
    "outcome",
    "steps",
    "rolled_back_to",
    "error",
)
ABANDONED = "abandoned: its deployer's ZooKeeper session ended before it finished"

# host:port, where host is a DNS name or IPv4 literal, or an IPv6 literal in brackets.
_SERVER = re.compile(r"(?:\[(?P<ipv6>[^\]]*)\]|(?P<host>[^:\[\]]*)):(?P<port>[0-9]{1,5})")
# A deployment id: what new_deployment_id() makes, or any other short token.
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,99}")
# Ledger node names: ZooKeeper's sequence suffix, ten digits.
_SEQUENCE = re.compile(r"[0-9]{10}")
# Text is recorded as is (user, host, image, step names) only when it has no control characters.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class LedgerError(Exception):
    """A lock or ledger operation that cannot go on; the message says what and where."""


class ZooKeeperUnreachable(LedgerError):
    """No ZooKeeper server answered within the connect timeout."""


class LockHeld(LedgerError):
    """Another deployment holds the app's lock."""

    def __init__(self, message: str, holder: dict | None):
        super().__init__(message)
        self.holder = holder


class LockLost(LedgerError):
    """The lock may no longer be ours: the deployment must stop changing things."""


class Conflict(LedgerError):
    """A ledger entry changed under us (compare-and-set failed)."""


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- settings ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    servers: tuple  # "host:port" strings, as kazoo takes them
    chroot: str
    connect_timeout: float = 10.0
    session_timeout: float = 10.0
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def hosts(self) -> str:
        return ",".join(self.servers)

    def client_options(self) -> dict:
        """kazoo options for digest authentication, when a user is set.

        The nodes the session creates then carry the same ACL as the chroot the
        zookeeper role made (all rights to that one identity, none to anyone else).
        """
        if self.username is None:
            return {}
        return {
            "auth_data": [("digest", f"{self.username}:{self.password}")],
            "default_acl": [make_digest_acl(self.username, self.password, all=True)],
        }


def parse_server(text, where: str) -> str:
    """One `host:port` (IPv6 in brackets), normalised: DNS names in lower case, addresses canonical."""
    match = _SERVER.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise LedgerError(f"{where}: expected host:port or [ipv6]:port, got {_shown(text)}")
    try:
        port = parse_port(int(match["port"]), where)
        if match["ipv6"] is not None:
            address = parse_address(match["ipv6"], where)
            if ":" not in address:
                raise RouteError(f"{where}: only an IPv6 address goes in brackets, got {_shown(text)}")
            return f"[{address}]:{port}"
        return f"{parse_host(match['host'], where)}:{port}"
    except RouteError as error:
        raise LedgerError(str(error)) from None


def parse_chroot(text, where: str = "chroot") -> str:
    """A ZooKeeper path: '/' and one to eight app-name-like segments; not ZooKeeper's own /zookeeper."""
    if not isinstance(text, str) or not text.startswith("/") or len(text) > 400:
        raise LedgerError(f"{where}: expected a path such as /dockyard, got {_shown(text)}")
    segments = text[1:].split("/")
    if len(segments) > MAX_CHROOT_SEGMENTS:
        raise LedgerError(f"{where}: at most {MAX_CHROOT_SEGMENTS} levels, got {_shown(text)}")
    try:
        for segment in segments:
            parse_name(segment, f"{where} segment {_shown(segment)}")
    except RouteError as error:
        raise LedgerError(str(error)) from None
    if segments[0] == "zookeeper":
        raise LedgerError(f"{where}: /zookeeper is ZooKeeper's own tree")
    return text


def parse_hosts(text, where: str = "hosts") -> tuple:
    """`host:port,host:port[/chroot]` -> (servers, chroot or None), with a strict grammar."""
    if not isinstance(text, str) or not text or len(text) > MAX_HOSTS_TEXT:
        raise LedgerError(f"{where}: expected host:port,host:port[/chroot], got {_shown(text)}")
    servers_text, slash, chroot_text = text.partition("/")
    chroot = parse_chroot(slash + chroot_text, f"{where} chroot") if slash else None
    servers = tuple(parse_server(server, f"{where} server {_shown(server)}") for server in servers_text.split(","))
    if len(servers) > MAX_SERVERS:
        raise LedgerError(f"{where}: at most {MAX_SERVERS} servers, got {len(servers)}")
    if len(set(servers)) != len(servers):
        raise LedgerError(f"{where}: a server is listed twice in {_shown(text)}")
    return servers, chroot


def parse_settings(
    hosts,
    chroot=None,
    connect_timeout: float = 10.0,
    session_timeout: float = 10.0,
    username=None,
    password=None,
) -> Settings:
    """The connection settings; the chroot comes from the hosts string or from chroot, default /dockyard.

    username and password (both or neither) are the digest identity that owns
    the chroot (the zookeeper role's deployer).
    """
    servers, hosts_chroot = parse_hosts(hosts)
    if chroot is not None:
        chroot = parse_chroot(chroot)
        if hosts_chroot is not None and hosts_chroot != chroot:
            raise LedgerError(f"chroot: {chroot} differs from the hosts string's chroot {hosts_chroot}")
    return Settings(
        servers,
        hosts_chroot or chroot or DEFAULT_CHROOT,
        _seconds(connect_timeout, "connect_timeout", 0.1, 600),
        _seconds(session_timeout, "session_timeout", 1, 600),
        *_credentials(username, password),
    )


def _credentials(username, password) -> tuple:
    if username is None and password is None:
        return None, None
    try:
        parse_name(username, "username")
    except RouteError as error:
        raise LedgerError(str(error)) from None
    # Never shown: only its type and length could be, and neither helps.
    if not isinstance(password, str) or not password or len(password) > 1024 or _CONTROL.search(password):
        raise LedgerError("password: expected 1 to 1024 characters without control characters, with username")
    return username, password


def _seconds(value, where: str, least: float, most: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not least <= value <= most:
        raise LedgerError(f"{where}: expected seconds from {least:g} to {most:g}, got {_shown(value)}")
    return float(value)


def parse_app(app) -> str:
    try:
        return parse_name(app, "app")
    except RouteError as error:
        raise LedgerError(str(error)) from None


def _token(value, where: str) -> str:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise LedgerError(f"{where}: expected letters, digits and '_.:@+-' (at most 100), got {_shown(value)}")
    return value


def _text(value, where: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit or _CONTROL.search(value):
        raise LedgerError(f"{where}: expected text without control characters (at most {limit}), got {_shown(value)}")
    return value


def _one_line(value, where: str) -> str:
    """An error message as the ledger keeps it: control characters (newlines too) as spaces, cut short."""
    if not isinstance(value, str):
        raise LedgerError(f"{where}: expected text, got {_shown(value)}")
    return _CONTROL.sub(" ", value)[:MAX_ERROR_TEXT]


def new_deployment_id() -> str:
    """A deployment id that sorts by start time and is unique: 20261201T130500Z-1a2b3c4d."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def current_user() -> str:
    """The account running the deployment (a uid when it has no name, as in some containers)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


# What Session.write's took_effect returns for a write that did not take effect.
NOT_WRITTEN = object()


# -- the session ------------------------------------------------------------------------
class Session:
    """One ZooKeeper client session, and what happened to its connection since it opened.

    kazoo reports SUSPENDED when the connection drops (the session may live on)
    and LOST when the session expired (every ephemeral node of it is gone); a
    new session may follow by itself. The lock asks this object whether it is
    still safe to change anything.
    """

    # How many times one request is sent again after its connection dropped:
    # each try waits for the same session to come back first.
    RETRIES = 3
    READS = frozenset({"get", "get_children", "exists"})

    def __init__(self, settings: Settings):
        self.settings = settings
        self.client = None
        self.session_id: int | None = None
        self.lost = False

    def open(self) -> Session:
        if KAZOO_IMPORT_ERROR is not None:
            raise LedgerError(f"the Python library kazoo (Debian: python3-kazoo) is missing: {KAZOO_IMPORT_ERROR}")
        client = KazooClient(
            hosts=self.settings.hosts, timeout=self.settings.session_timeout, **self.settings.client_options()
        )
        client.add_listener(self._state_changed)
        try:
            client.start(timeout=self.settings.connect_timeout)
        except KazooTimeoutError:
            raise ZooKeeperUnreachable(
                f"no ZooKeeper server answered within {self.settings.connect_timeout:g}s at {self.settings.hosts}"
            ) from None
        self.client = client
        self.session_id = client.client_id[0]
        return self

    def _state_changed(self, state) -> None:
        # kazoo calls this from its event thread: record only, never block.
        if state == KazooState.LOST:
            self.lost = True

    def close(self) -> None:
        if self.client is not None:
            self.client.stop()
            self.client.close()
            self.client = None

    def __enter__(self) -> Session:
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def call(self, operation: str, *args, **kwargs):
        """One request (kazoo's get, create, ...), answered within the session timeout or failed.

        kazoo's own blocking calls wait for as long as the connection is down;
        past the session timeout the session is as good as gone anyway. A read
        cut by a dropped connection is sent again once the same session is back.
        """
        if self.client is None:
            raise LedgerError("the ZooKeeper session is closed")
        attempts = 0
        while True:
            request = getattr(self.client, f"{operation}_async")(*args, **kwargs)
            try:
                return request.get(timeout=self.settings.session_timeout)
            except ConnectionLoss:
                attempts += 1
                if operation not in self.READS or attempts > self.RETRIES or not self.resume():
                    raise

    def write(self, operation: str, *args, took_effect=None, **kwargs):
        """A write that survives a dropped connection.

        When the connection drops before the answer, the write may or may not
        have taken effect. Once the same session is back, took_effect() reads
        it back: it returns what the write would have returned, or NOT_WRITTEN
        to send it again. Without took_effect the write is sent again as it is,
        which suits writes that cannot apply twice (a delete of a version).
        """
        attempts = 0
        while True:
            try:
                return self.call(operation, *args, **kwargs)
            except ConnectionLoss:
                attempts += 1
                if attempts > self.RETRIES or not self.resume():
                    raise
            if took_effect is not None and (result := took_effect()) is not NOT_WRITTEN:
                return result

    def resume(self) -> bool:
        """Waits up to the session timeout for a dropped connection to come back with the same session.

        True once it has: every ephemeral node of the session (the lock) is
        still there. False when the session expired, was replaced or closed, or
        the wait ran out.
        """
        deadline = time.monotonic() + self.settings.session_timeout
        while self.client is not None and not self.lost:
            if self.client.state == KazooState.CONNECTED:
                client_id = self.client.client_id
                return client_id is not None and client_id[0] == self.session_id
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return False

    def path(self, *segments: str) -> str:
        return "/".join((self.settings.chroot, *segments))

    def unsafe_reason(self) -> str | None:
        """Why changes are not safe now (connection suspended, session lost or replaced), or None."""
        if self.client is None:
            return "the ZooKeeper session is closed"
        if self.lost:
            return "the ZooKeeper session expired"
        if self.client.state != KazooState.CONNECTED:
            return f"the connection to ZooKeeper at {self.settings.hosts} is {self.client.state.lower()}"
        client_id = self.client.client_id
        if client_id is None or client_id[0] != self.session_id:
            return "the ZooKeeper session was replaced by a new one"
        return None


@contextlib.contextmanager
def _zookeeper_errors(session: Session, what: str):
    """Turns a dropped connection or an expired session during one call into a LedgerError saying what was cut."""
    try:
        yield
    except (ConnectionLoss, SessionExpiredError) as error:
        raise LedgerError(
            f"{what}: ZooKeeper at {session.settings.hosts} stopped answering ({type(error).__name__})"
        ) from None
    except KazooTimeoutError:
        raise LedgerError(f"{what}: ZooKeeper at {session.settings.hosts} did not answer in time") from None
    except NoAuthError:
        identity = f"user {session.settings.username}" if session.settings.username else "no identity"
        raise LedgerError(
            f"{what}: ZooKeeper at {session.settings.hosts} refuses access under {session.settings.chroot}"
            f" to {identity}: check the digest username and password (the zookeeper role's deployer)"
        ) from None


# -- the lock ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Holder:
    deployment: str
    host: str
    user: str
    started: str

    def __post_init__(self):
        _token(self.deployment, "deployment")
        for name in ("host", "user", "started"):
            _text(getattr(self, name), name)

    @classmethod
    def here(cls, deployment: str) -> Holder:
        return cls(deployment, socket.gethostname(), current_user(), _now())

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()


def describe_holder(data: bytes) -> tuple:
    """(holder as a dict or None, words naming it) from a lock node's data, which may be anything."""
    try:
        holder = json.loads(data.decode("utf-8")) if len(data) <= MAX_HOLDER_BYTES else None
    except ValueError:
        holder = None
    if not isinstance(holder, dict):
        return None, "a holder whose lock data is unreadable"
    shown = {key: _shown(holder.get(key)) for key in ("deployment", "user", "host", "started")}
    return holder, (
        f"deployment {shown['deployment']} by user {shown['user']} on host {shown['host']} since {shown['started']}"
    )


class DeploymentLock:
    """The per-app lock at <chroot>/locks/<app>, held for a whole deployment.

    acquire() waits up to lock_timeout seconds (0: not at all) for the current
    holder to release, then fails naming it. check(), called before every
    change a deployment makes, fails unless the lock is certainly still ours.
    """

    def __init__(self, session: Session, app: str, holder: Holder, lock_timeout: float = 0):
        self.session = session
        self.app = parse_app(app)
        self.holder = holder
        self.lock_timeout = _seconds(lock_timeout, "lock_timeout", 0, 3600)
        self.path = session.path("locks", self.app)
        self._data = holder.encode()
        self._held = False

    def acquire(self) -> DeploymentLock:
        deadline = time.monotonic() + self.lock_timeout
        with _zookeeper_errors(self.session, f"locking app {self.app}"):
            while True:
                try:
                    self.session.write(
                        "create", self.path, self._data, ephemeral=True, makepath=True, took_effect=self._ours
                    )
                    self._held = True
                    self.check()
                    return self
                except NodeExistsError:
                    pass
                released = threading.Event()
                try:
                    data, _stat = self.session.call("get", self.path, watch=lambda _event, event=released: event.set())
                except NoNodeError:
                    continue  # released between our create and our read
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    holder, words = describe_holder(data)
                    waited = f" after waiting {self.lock_timeout:g}s" if self.lock_timeout > 0 else ""
                    raise LockHeld(f"app {self.app} is being deployed{waited}: its lock is held by {words}", holder)
                released.wait(remaining)

    def _ours(self):
        """The lock's path when its node is ours with our data (a create whose answer was lost), else NOT_WRITTEN."""
        try:
            data, stat = self.session.call("get", self.path)
        except NoNodeError:
            return NOT_WRITTEN
        return self.path if stat.ephemeralOwner == self.session.session_id and data == self._data else NOT_WRITTEN

    def check(self) -> None:
        """Raises LockLost unless the session is connected and the lock node is still ours, with our data.

        A dropped connection is waited for, up to the session timeout: back with
        the same session, the lock is still ours.
        """
        if not self._held:
            raise LockLost(f"the lock of app {self.app} is not held")
        self.session.resume()
        reason = self.session.unsafe_reason()
        if reason is None:
            try:
                data, stat = self.session.call("get", self.path)
            except NoNodeError:
                reason = f"its node {self.path} is gone"
            except (ConnectionLoss, SessionExpiredError, KazooTimeoutError, NoAuthError) as error:
                reason = f"ZooKeeper stopped answering ({type(error).__name__})"
            else:
                if stat.ephemeralOwner != self.session.session_id or data != self._data:
                    reason = f"its node {self.path} now belongs to {describe_holder(data)[1]}"
        if reason is not None:
            raise LockLost(f"the lock of app {self.app} may no longer be ours, so the deployment stops: {reason}")

    def release(self) -> None:
        """Deletes the lock node when it is still ours; a lock already gone is left as it is."""
        if not self._held:
            return
        self._held = False
        if self.session.unsafe_reason() is not None:
            return  # our node went with the session, or goes when it expires
        # A failed delete is harmless: closing the session deletes the node too.
        with contextlib.suppress(NoNodeError, ConnectionLoss, SessionExpiredError, KazooTimeoutError):
            data, stat = self.session.call("get", self.path)
            if stat.ephemeralOwner == self.session.session_id and data == self._data:
                self.session.call("delete", self.path, version=stat.version)

    def __enter__(self) -> DeploymentLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


# -- the ledger -------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One deployment as the ledger records it; `sequence` is its znode's name."""

    app: str
    sequence: str
    deployment: str
    version: str
    image: str
    spec: dict
    user: str
    host: str
    started: str
    ended: str | None = None
    outcome: str = "running"
    steps: tuple = ()  # ({"name": str, "seconds": float, "ok": bool}, ...), in order
    rolled_back_to: str | None = None  # the deployment whose version this one restored
    error: str | None = None

    def to_json(self) -> dict:
        record = {key: getattr(self, key) for key in ENTRY_KEYS}
        record["steps"] = list(self.steps)
        return record


def _dump_json(value) -> bytes:
    """Compact JSON, strictly: NaN and Infinity are not JSON, and ZooKeeper's other readers may refuse them."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def encode_entry(entry: Entry) -> bytes:
    data = _dump_json(entry.to_json())
    if len(data) > MAX_ENTRY_BYTES:
        raise LedgerError(
            f"ledger entry of app {entry.app} deployment {entry.deployment} is {len(data)} bytes,"
            f" more than the limit of {MAX_ENTRY_BYTES}"
        )
    return data


def _optional(value, parse, where: str):
    return None if value is None else parse(value, where)


def decode_entry(app: str, sequence: str, data: bytes) -> Entry:
    """An Entry from a ledger znode's data, checked field by field (the data may be anything)."""
    where = f"ledger entry {app}/{sequence}"
    if len(data) > MAX_ENTRY_BYTES:
        raise LedgerError(f"{where}: {len(data)} bytes, more than {MAX_ENTRY_BYTES}")
    try:
        record = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError:
        raise LedgerError(f"{where}: not JSON") from None
    # Keys beyond these are ignored, so that a newer module's entries stay readable.
    if not isinstance(record, dict) or not set(ENTRY_KEYS) <= set(record):
        raise LedgerError(f"{where}: expected an object with the keys {', '.join(ENTRY_KEYS)}")
    if record["outcome"] not in OUTCOMES:
        raise LedgerError(f"{where}: outcome: expected one of {', '.join(OUTCOMES)}, got {_shown(record['outcome'])}")
    if not isinstance(record["spec"], dict):
        raise LedgerError(f"{where}: spec: expected an object")
    return Entry(
        app=app,
        sequence=sequence,
        deployment=_token(record["deployment"], f"{where}: deployment"),
        version=_token(record["version"], f"{where}: version"),
        image=_text(record["image"], f"{where}: image", 512),
        spec=record["spec"],
        user=_text(record["user"], f"{where}: user"),
        host=_text(record["host"], f"{where}: host"),
        started=_text(record["started"], f"{where}: started"),
        ended=_optional(record["ended"], _text, f"{where}: ended"),
        outcome=record["outcome"],
        steps=_steps(record["steps"], f"{where}: steps"),
        rolled_back_to=_optional(record["rolled_back_to"], _token, f"{where}: rolled_back_to"),
        error=_optional(record["error"], _error_text, f"{where}: error"),
    )


def _error_text(value, where: str) -> str:
    return _text(value, where, MAX_ERROR_TEXT)


def _steps(value, where: str) -> tuple:
    if not isinstance(value, list) or len(value) > MAX_STEPS:
        raise LedgerError(f"{where}: expected a list of at most {MAX_STEPS} steps")
    for step in value:
        if (
            not isinstance(step, dict)
            or set(step) != {"name", "seconds", "ok"}
            or isinstance(step["seconds"], bool)
            or not isinstance(step["seconds"], (int, float))
            or not isinstance(step["ok"], bool)
        ):
            raise LedgerError(f"{where}: expected steps {{name, seconds, ok}}, got {_shown(step)}")
        _text(step["name"], f"{where}: name")
    return tuple(value)


def _spec(spec, app: str) -> dict:
    if not isinstance(spec, dict):
        raise LedgerError(f"spec of app {app}: expected a mapping, got {type(spec).__name__}")
    try:
        size = len(_dump_json(spec))
    except (TypeError, ValueError) as error:
        raise LedgerError(f"spec of app {app}: not JSON data ({error})") from None
    if size > MAX_SPEC_BYTES:
        raise LedgerError(f"spec of app {app}: {size} bytes of JSON, more than the ledger's limit of {MAX_SPEC_BYTES}")
    return json.loads(json.dumps(spec))  # a copy the caller cannot change under us


class Ledger:
    """Every deployment of every app, newest last in ZooKeeper, newest first when read."""

    def __init__(self, session: Session, max_entries: int = DEFAULT_MAX_ENTRIES):
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or not 1 <= max_entries <= 10_000:
            raise LedgerError(f"max_entries: expected a whole number 1-10000, got {_shown(max_entries)}")
        self.session = session
        self.max_entries = max_entries

    def _app_path(self, app: str) -> str:
        return self.session.path("deployments", app)

    def record(
        self,
        app: str,
        holder: Holder,
        version: str,
        image: str,
        spec: dict,
        rolled_back_to: str | None = None,
    ) -> Deployment:
        """Adds a running entry for a deployment that starts now, and prunes the app's oldest ones.

        Call it holding the app's lock: running entries older than this one are
        then left over by deployers that died, and are closed as failed.
        """
        app = parse_app(app)
        entry = Entry(
            app=app,
            sequence="",
            deployment=holder.deployment,
            version=_token(version, "version"),
            image=_text(image, "image", 512),
            spec=_spec(spec, app),
            user=holder.user,
            host=holder.host,
            started=holder.started,
            rolled_back_to=_optional(rolled_back_to, _token, "rolled_back_to"),
        )
        data = encode_entry(entry)
        with _zookeeper_errors(self.session, f"recording deployment {entry.deployment} of app {app}"):
            self._close_abandoned(app)
            path = self.session.write(
                "create",
                self._app_path(app) + "/",
                data,
                sequence=True,
                makepath=True,
                took_effect=lambda: self._created(app, data),
            )
            deployment = Deployment(self.session, replace(entry, sequence=path.rsplit("/", 1)[1]), 0)
            self.prune(app)
        return deployment

    def _close_abandoned(self, app: str) -> None:
        for entry, version in self._entries(app):
            if entry.outcome == "running":
                Deployment(self.session, entry, version).finish("failed", error=ABANDONED)

    def _created(self, app: str, data: bytes):
        """The path of the entry holding exactly data (unique: it names its deployment), else NOT_WRITTEN."""
        try:
            names = self.session.call("get_children", self._app_path(app))
        except NoNodeError:
            return NOT_WRITTEN
        for name in sorted((name for name in names if _SEQUENCE.fullmatch(name)), reverse=True):
            path = f"{self._app_path(app)}/{name}"
            with contextlib.suppress(NoNodeError):
                if self.session.call("get", path)[0] == data:
                    return path
        return NOT_WRITTEN

    def _entries(self, app: str) -> list:
        """(Entry, znode version) pairs of an app, newest first."""
        try:
            names = self.session.call("get_children", self._app_path(app))
        except NoNodeError:
            return []
        found = []
        for name in sorted((name for name in names if _SEQUENCE.fullmatch(name)), reverse=True):
            try:
                data, stat = self.session.call("get", f"{self._app_path(app)}/{name}")
            except NoNodeError:
                continue  # pruned by another deployer meanwhile
            found.append((decode_entry(app, name, data), stat.version))
        return found

    def history(self, app: str) -> list:
        """An app's entries, newest first."""
        app = parse_app(app)
        with _zookeeper_errors(self.session, f"reading the history of app {app}"):
            return [entry for entry, _version in self._entries(app)]

    def last_successful(self, app: str) -> Entry | None:
        """The newest succeeded deployment: the one that is live (a plain rollback goes to the one before it)."""
        return next((entry for entry in self.history(app) if entry.outcome == "succeeded"), None)

    def find(self, app: str, reference: str) -> Entry | None:
        """The entry with this deployment id, else the newest succeeded one with this version id, else None."""
        reference = _token(reference, "deployment or version id")
        history = self.history(app)
        by_id = (entry for entry in history if entry.deployment == reference)
        by_version = (entry for entry in history if entry.version == reference and entry.outcome == "succeeded")
        return next(by_id, None) or next(by_version, None)

    def apps(self) -> list:
        """The apps with at least one entry, sorted."""
        with _zookeeper_errors(self.session, "listing the ledger's apps"):
            try:
                names = self.session.call("get_children", self.session.path("deployments"))
            except NoNodeError:
                return []
        return sorted(names)

    def prune(self, app: str) -> list:
        """Deletes the oldest entries past max_entries, never the newest succeeded one nor a running one.

        Returns the sequences deleted. An entry that changed since it was read is
        kept (its delete is a compare-and-set too).
        """
        app = parse_app(app)
        with _zookeeper_errors(self.session, f"pruning the ledger of app {app}"):
            entries = self._entries(app)
            current = next((entry for entry, _version in entries if entry.outcome == "succeeded"), None)
            excess = len(entries) - self.max_entries
            pruned = []
            for entry, version in reversed(entries):
                if len(pruned) >= excess:
                    break
                if entry is current or entry.outcome == "running":
                    continue
                with contextlib.suppress(NoNodeError, BadVersionError):
                    self.session.write("delete", f"{self._app_path(app)}/{entry.sequence}", version=version)
                    pruned.append(entry.sequence)
        return pruned


class Deployment:
    """A ledger entry being written as its deployment progresses; each write is a compare-and-set."""

    def __init__(self, session: Session, entry: Entry, znode_version: int):
        self.session = session
        self.entry = entry
        self.znode_version = znode_version
        self.path = f"{session.path('deployments', entry.app)}/{entry.sequence}"

    def _write(self, entry: Entry) -> None:
        data = encode_entry(entry)
        what = f"updating deployment {entry.deployment} of app {entry.app}"
        with _zookeeper_errors(self.session, what):
            try:
                stat = self.session.write(
                    "set", self.path, data, version=self.znode_version, took_effect=lambda: self._holds(data)
                )
            except BadVersionError:
                raise Conflict(f"{what}: its ledger entry {self.path} was changed by someone else") from None
            except NoNodeError:
                raise LedgerError(f"{what}: its ledger entry {self.path} is gone") from None
        self.entry = entry
        self.znode_version = stat.version

    def _holds(self, data: bytes):
        """The entry's stat when it holds exactly data (a set whose answer was lost), else NOT_WRITTEN.

        Sent again, a set that did not take effect still fails as a conflict
        when someone else changed the entry meanwhile.
        """
        current, stat = self.session.call("get", self.path)
        return stat if current == data else NOT_WRITTEN

    def add_step(self, name: str, seconds: float, ok: bool = True) -> None:
        if len(self.entry.steps) >= MAX_STEPS:
            raise LedgerError(
                f"deployment {self.entry.deployment} of app {self.entry.app}: more than {MAX_STEPS} steps"
            )
        seconds = _seconds(seconds, "step seconds", 0, MAX_STEP_SECONDS)
        step = {"name": _text(name, "step name"), "seconds": round(seconds, 3), "ok": bool(ok)}
        self._write(replace(self.entry, steps=(*self.entry.steps, step)))

    @contextlib.contextmanager
    def step(self, name: str):
        """Times the block and records it as a step, failed when the block raised."""
        started = time.monotonic()
        try:
            yield
        except BaseException:
            # The block's own error is the one to report, even when ZooKeeper is what failed.
            with contextlib.suppress(LedgerError):
                self.add_step(name, time.monotonic() - started, ok=False)
            raise
        self.add_step(name, time.monotonic() - started)

    def finish(self, outcome: str, error: str | None = None, rolled_back_to: str | None = None) -> None:
        if outcome not in FINAL_OUTCOMES:
            raise LedgerError(f"outcome: expected one of {', '.join(FINAL_OUTCOMES)}, got {_shown(outcome)}")
        self._write(
            replace(
                self.entry,
                outcome=outcome,
                ended=_now(),
                error=_optional(error, _one_line, "error"),
                rolled_back_to=_optional(rolled_back_to, _token, "rolled_back_to") or self.entry.rolled_back_to,
            )
        )
