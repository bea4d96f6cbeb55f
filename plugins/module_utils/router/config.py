# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The router reporter's configuration: a JSON file, validated with messages that name the setting."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..daemon.config import ConfigError, duration, log_level, only, read_json
from ..daemon.consul import ConsulSettings, parse_settings
from ..daemon.consul import check_files as check_consul_files
from ..daemon.routing import RouteError, parse_name, parse_prefix
from .report import MAX_HEARTBEAT_MS, MIN_HEARTBEAT_MS, router_key

_KEYS = (
    "consul",
    "node",
    "kv_prefix",
    "master_socket",
    "poll_interval",
    "min_interval",
    "heartbeat",
    "error_after",
    "status_file",
    "log_level",
)
_PATH = re.compile(r"/[A-Za-z0-9._/-]{0,200}")


@dataclass
class Config:
    node: str
    consul: ConsulSettings = field(default_factory=ConsulSettings)
    kv_prefix: str = "dockyard/"
    master_socket: str = "/run/haproxy-master.sock"
    poll_interval: float = 0.5  # how often HAProxy is asked
    min_interval: float = 1.0  # the rate limit: at most one write per min_interval
    heartbeat: float = 30.0  # a write at least this often, changed or not
    error_after: float = 5.0  # HAProxy unreadable this long: the report says so (shorter: a reload's gap)
    status_file: str = "/run/dockyard/router.json"
    log_level: str = "info"
    # Not in the file: the retry delays after a failed write or read (doubling, jittered, capped).
    backoff: float = 0.25
    max_backoff: float = 10.0

    @property
    def key(self) -> str:
        """The one key this router's reporter writes, and all its token may write."""
        return router_key(self.kv_prefix, self.node)

    @property
    def heartbeat_ms(self) -> int:
        return round(self.heartbeat * 1000)


def _text(raw: dict, name: str, default: str) -> str:
    value = raw.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigError(f"{name}: expected a string, got {value!r}")
    return value


def _path(raw: dict, name: str, default: str) -> str:
    value = _text(raw, name, default)
    if not _PATH.fullmatch(value):
        raise ConfigError(f"{name}: expected an absolute path (letters, digits, . _ - /), got {value!r}")
    return value


def _durations(raw: dict, config: Config) -> None:
    config.poll_interval = duration(raw.get("poll_interval", "500ms"), "poll_interval")
    config.min_interval = duration(raw.get("min_interval", "1s"), "min_interval")
    config.heartbeat = duration(raw.get("heartbeat", "30s"), "heartbeat")
    config.error_after = duration(raw.get("error_after", "5s"), "error_after")
    if not MIN_HEARTBEAT_MS <= config.heartbeat_ms <= MAX_HEARTBEAT_MS:
        raise ConfigError(f"heartbeat: must lie between 1s and 1h, got {config.heartbeat:g}s")
    if not 0.1 <= config.poll_interval <= config.heartbeat:
        raise ConfigError(f"poll_interval: must lie between 100ms and the heartbeat, got {config.poll_interval:g}s")
    if config.min_interval > config.heartbeat:
        raise ConfigError(f"min_interval: must not exceed the heartbeat, got {config.min_interval:g}s")


def parse(raw: Any) -> Config:
    """A Config from the decoded JSON document; raises ConfigError naming the bad setting."""
    if not isinstance(raw, dict):
        raise ConfigError("the configuration must be a JSON object")
    only(raw, _KEYS, "config")
    node = _text(raw, "node", "")
    if not node:
        raise ConfigError("node is required (the router's node name, as the registrator's)")
    try:
        parse_name(node, "node")
        prefix = _text(raw, "kv_prefix", "dockyard/")
        prefix = parse_prefix(prefix if prefix.endswith("/") else prefix + "/", "kv_prefix")
    except RouteError as error:
        raise ConfigError(str(error)) from None
    # The file alone, never CONSUL_HTTP_*: the reporter writes with its router's own token and nothing else.
    config = Config(node=node, consul=parse_settings(raw.get("consul"), environ={}), kv_prefix=prefix)
    config.master_socket = _path(raw, "master_socket", config.master_socket)
    config.status_file = _path(raw, "status_file", config.status_file)
    _durations(raw, config)
    config.log_level = log_level(_text(raw, "log_level", "info"))
    return config


def load(path: str) -> Config:
    return parse(read_json(path))


def check_files(config: Config) -> None:
    """On the host: the token and TLS files named in the configuration exist and can be read."""
    check_consul_files(config.consul)
