# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registrator's configuration: a JSON file, validated with messages that name the setting.

The one number that needs care is the session TTL. `session_ttl` is what an
operator cares about: the bound within which a dead registrator's instances
disappear. Consul may wait up to twice a session's TTL before invalidating it,
so the session is created with half of it (never below Consul's 10 s minimum)
and renewed every third of that.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from ..appconfig.layout import BASE_DIR
from ..daemon.config import ConfigError, duration, log_level, only, read_json
from ..daemon.consul import ConsulSettings, parse_settings
from ..daemon.consul import check_files as check_consul_files
from ..daemon.routing import RouteError, node_instances_prefix, parse_address, parse_name, parse_prefix

# Consul refuses session TTLs outside [10s, 24h] and may take up to twice the TTL to invalidate a session.
CONSUL_MIN_TTL = 10.0
CONSUL_MAX_TTL = 86400.0
MIN_SESSION_TTL = 2 * CONSUL_MIN_TTL
MAX_SESSION_TTL = 2 * CONSUL_MAX_TTL

_KEYS = (
    "consul",
    "node",
    "address",
    "kv_prefix",
    "session_ttl",
    "resync_interval",
    "docker_url",
    "state_dir",
    "log_level",
    "app_config",
)
DEFAULT_STATE_DIR = "/var/lib/dockyard/registrator"
# An absolute path of safe characters: state_dir's grammar, shared by app_config.directory.
_DIRECTORY = re.compile(r"/[A-Za-z0-9._/-]{0,200}")


def consul_ttl(session_ttl: float) -> float:
    """The TTL the session is created with: half the bound, as Consul may take twice the TTL to act."""
    return max(CONSUL_MIN_TTL, session_ttl / 2)


def renew_interval(ttl: float) -> float:
    """How often the session is renewed: a third of its TTL, so two renewals may fail before it lapses."""
    return ttl / 3


def go_duration(seconds: float) -> str:
    """A duration in the form Consul parses (Go's time.ParseDuration): "10s", "12.5s"."""
    return f"{seconds:g}s"


@dataclass
class Config:
    node: str
    address: str
    consul: ConsulSettings = field(default_factory=ConsulSettings)
    kv_prefix: str = "dockyard/"
    session_ttl: float = 20.0
    resync_interval: float = 30.0
    docker_url: str = "unix:///var/run/docker.sock"
    state_dir: str = DEFAULT_STATE_DIR  # the drains in progress, so a restarted daemon finishes them
    log_level: str = "info"
    # Where the app configuration agent renders apps' config files (appconfig/agent.py); None: the agent is off.
    app_config_dir: str | None = None
    # Not in the file: the retry delays after a Consul or Docker error (doubling, jittered, capped).
    backoff: float = 0.25
    max_backoff: float = 5.0

    @property
    def consul_ttl(self) -> float:
        return consul_ttl(self.session_ttl)

    @property
    def renew_interval(self) -> float:
        return renew_interval(self.consul_ttl)

    @property
    def session_name(self) -> str:
        return f"dockyard-registrator {self.node}"

    @property
    def instances_prefix(self) -> str:
        """Every key this node's registrator writes, and all its token may write: <prefix>instances/<node>/."""
        return node_instances_prefix(self.kv_prefix, self.node)


def _text(raw: dict, name: str, where: str, default: str = "") -> str:
    value = raw.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def parse(raw: Any) -> Config:
    """A Config from the decoded JSON document; raises ConfigError naming the bad setting."""
    if not isinstance(raw, dict):
        raise ConfigError("the configuration must be a JSON object")
    only(raw, _KEYS, "config")
    node = _text(raw, "node", "node")
    if not node:
        raise ConfigError("node is required (the node's name in instance keys)")
    try:
        parse_name(node, "node")
    except RouteError as error:
        raise ConfigError(f"{error} (the node's name in instance keys)") from None
    address = _text(raw, "address", "address").strip()
    if not address:
        raise ConfigError("address is required (the node's routable address that routers connect to)")
    try:
        address = parse_address(address, "address")
    except RouteError as error:
        raise ConfigError(f"{error} (every instance's addr: the routers refuse any other)") from None
    try:
        prefix = _text(raw, "kv_prefix", "kv_prefix", "dockyard/")
        prefix = parse_prefix(prefix if prefix.endswith("/") else prefix + "/", "kv_prefix")
    except RouteError as error:
        raise ConfigError(str(error)) from None
    # The file alone, never CONSUL_HTTP_*: the registrator writes with its node's own token and nothing else.
    consul = parse_settings(raw.get("consul"), environ={})
    config = Config(node=node, address=address, consul=consul, kv_prefix=prefix)
    config.session_ttl = duration(raw.get("session_ttl", "20s"), "session_ttl")
    if config.session_ttl < MIN_SESSION_TTL:
        raise ConfigError(
            f"session_ttl: must be at least {MIN_SESSION_TTL:g}s (Consul's minimum session TTL is"
            f" {CONSUL_MIN_TTL:g}s and it may take twice that to act), got {config.session_ttl:g}s"
        )
    if config.session_ttl > MAX_SESSION_TTL:
        raise ConfigError(f"session_ttl: must be at most {MAX_SESSION_TTL:g}s, got {config.session_ttl:g}s")
    config.resync_interval = duration(raw.get("resync_interval", "30s"), "resync_interval")
    if config.resync_interval < 1:
        raise ConfigError(f"resync_interval: must be at least 1s, got {config.resync_interval:g}s")
    config.docker_url = _text(raw, "docker_url", "docker_url", "unix:///var/run/docker.sock")
    if not re.match(r"^(unix|tcp|https?|npipe)://.", config.docker_url):
        raise ConfigError(f"docker_url: expected unix:///path or tcp://host:port, got {config.docker_url!r}")
    config.state_dir = _text(raw, "state_dir", "state_dir", DEFAULT_STATE_DIR)
    if not _DIRECTORY.fullmatch(config.state_dir):
        raise ConfigError(f"state_dir: expected an absolute path (letters, digits, . _ - /), got {config.state_dir!r}")
    config.log_level = log_level(_text(raw, "log_level", "log_level", "info"))
    config.app_config_dir = _app_config_dir(raw.get("app_config"))
    return config


def _clean_directory(value: str, where: str) -> str:
    """state_dir's grammar, and clean (no //, . or .. segment, nor trailing /): the agent removes directories in it."""
    if not _DIRECTORY.fullmatch(value) or posixpath.normpath(value) != value or value == "/":
        raise ConfigError(
            f"{where}: expected a clean absolute path (letters, digits, . _ - /; no . or .. segment), got {value!r}"
        )
    return value


def _app_config_dir(raw: Any) -> str | None:
    """The app_config section: {"directory": ...}; absent or null leaves the agent off."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError('app_config: expected a mapping such as {"directory": "/var/lib/dockyard/app-config"}')
    only(raw, ("directory",), "app_config")
    return _clean_directory(_text(raw, "directory", "app_config.directory", BASE_DIR), "app_config.directory")


def load(path: str) -> Config:
    return parse(read_json(path))


def check_files(config: Config) -> None:
    """On the host: the TLS files named in the configuration exist and can be read."""
    check_consul_files(config.consul)
