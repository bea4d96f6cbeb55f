# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The renderer's configuration: a JSON file and defaults; the consul section is read by daemon.consul.parse_settings,
over CONSUL_HTTP_* from the environment."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import Any

from ..daemon.config import ConfigError, duration, log_level, only, read_json
from ..daemon.consul import ConsulSettings, parse_settings
from .commands import upgrade_placeholder

# Consul caps a blocking query's wait at ten minutes.
MAX_BLOCK_WAIT = 600.0
# max_drop weighs a render against the most entries live within this long: longer than an operator takes to notice
# and act on a refusal, short enough that a deliberate scale-down in small steps goes through on its own.
DEFAULT_MAX_DROP_WINDOW = 3600.0
MISSING_CONSUL_KEY = ("wait", "fail")


def share(value: Any, name: str) -> float | None:
    """A share between 0 and 1 from 0.5 or "50%"; None when unset."""
    if value is None or value == "":
        return None
    try:
        number = float(str(value).rstrip("%")) / 100 if str(value).endswith("%") else float(value)
    except ValueError:
        raise ConfigError(f"{name}: expected a share such as 0.5 or 50%, got {value!r}") from None
    if not 0 <= number <= 1:
        raise ConfigError(f"{name}: must lie between 0 and 1 (0% and 100%)")
    return number


def signal_number(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    text = str(value).upper()
    if not text.startswith("SIG"):
        text = "SIG" + text
    number = getattr(signal, text, None)
    if not isinstance(number, int):
        raise ConfigError(f"{name}: unknown signal {value!r}")
    return int(number)


@dataclass
class Wait:
    min: float = 0.0
    max: float = 0.0


@dataclass
class WatchSettings:
    # A blocking query's wait, consul-template's block_query_wait; also the longest a watch takes to notice that
    # Consul's index went backwards (a snapshot restore), which Consul does not answer before the wait is over.
    block_wait: float = 60.0
    min_interval: float = 0.1  # rate limit: no two queries of one dependency closer than this
    backoff: float = 0.25  # first retry delay after an error
    # Cap of the exponential back-off. consul-template's is 1m; ours is short so that a change made as Consul
    # comes back from an outage of any length renders within seconds (the jitter spreads the retries of many hosts).
    max_backoff: float = 3.0
    # consul-template's max_stale: reads may come from any server lagging the leader by at most this; 0 for off.
    max_stale: float = 2.0


@dataclass
class TemplateConfig:
    name: str
    destination: str
    source: str = ""
    contents: str | None = None
    user: str | int | None = None
    group: str | int | None = None
    mode: int | None = None
    check: str | list | None = None
    command: str | list | None = None
    command_timeout: float = 30.0
    wait: Wait | None = None
    error_on_missing_key: bool = True  # consul-template's meaning: a missing map key or attribute fails the template
    missing_consul_key: str = "wait"  # key() of a Consul key that does not exist: wait (keep the live file) or fail
    max_drop: float | None = None
    max_drop_window: float = DEFAULT_MAX_DROP_WINDOW
    # Not in the file: set by the app configuration agent for templates apps wrote (template.Template).
    sandboxed: bool = False
    variables: dict = field(default_factory=dict)

    def read_source(self) -> str:
        if self.contents is not None:
            return self.contents
        # newline="": a CRLF in the template stays a CRLF in the file, as consul-template keeps it.
        with open(self.source, encoding="utf-8", newline="") as handle:
            return handle.read()


@dataclass
class ExecSettings:
    command: list = field(default_factory=list)
    reload_signal: int | None = int(signal.SIGHUP)
    kill_signal: int = int(signal.SIGTERM)
    kill_timeout: float = 10.0


@dataclass
class StatusSettings:
    address: str = "127.0.0.1"
    port: int | None = None  # None: no status endpoint


@dataclass
class Config:
    consul: ConsulSettings = field(default_factory=ConsulSettings)
    wait: Wait = field(default_factory=Wait)
    watch: WatchSettings = field(default_factory=WatchSettings)
    templates: list = field(default_factory=list)
    exec: ExecSettings = field(default_factory=ExecSettings)
    status: StatusSettings = field(default_factory=StatusSettings)
    log_level: str = "info"
    state_dir: str | None = None  # the max_drop baselines and the control socket; None: in memory, no socket

    def wait_for(self, template: TemplateConfig) -> Wait:
        return template.wait if template.wait is not None else self.wait


def _wait(raw: Any, where: str) -> Wait:
    if isinstance(raw, (int, float, str)):
        low = duration(raw, where)
        return Wait(low, low * 4)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected {{min, max}}")
    only(raw, ("min", "max"), where)
    low = duration(raw.get("min", 0), where + ".min")
    high = duration(raw.get("max", low * 4), where + ".max")
    if high < low:
        raise ConfigError(f"{where}.max must not be below {where}.min")
    return Wait(low, high)


def _command(raw: Any, where: str) -> str | list | None:
    if raw is None or raw == "" or raw == []:
        return None
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return list(raw)
    raise ConfigError(f"{where}: expected a shell command string or a list of arguments")


def _mode(raw: Any, where: str) -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, int):
        return raw
    try:
        return int(str(raw), 8)
    except ValueError:
        raise ConfigError(f'{where}: expected an octal mode such as "0644"') from None


_TEMPLATE_KEYS = (
    "name",
    "source",
    "contents",
    "destination",
    "user",
    "owner",
    "group",
    "mode",
    "perms",
    "check",
    "command",
    "command_timeout",
    "wait",
    "error_on_missing_key",
    "missing_consul_key",
    "max_drop",
    "max_drop_window",
)


def _flag(raw: dict, name: str, default: bool, where: str) -> bool:
    value = raw.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{name}: expected true or false, got {value!r}")
    return value


def _missing_consul_key(raw: dict, where: str) -> str:
    value = raw.get("missing_consul_key", "wait")
    if value not in MISSING_CONSUL_KEY:
        raise ConfigError(f"{where}.missing_consul_key: expected wait or fail, got {value!r}")
    return value


def _window(raw: dict, where: str) -> float:
    window = duration(raw.get("max_drop_window", DEFAULT_MAX_DROP_WINDOW), where + ".max_drop_window")
    if window <= 0:
        raise ConfigError(f"{where}.max_drop_window must be above 0")
    return window


def parse_template(raw: dict, index: int) -> TemplateConfig:
    where = f"templates[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping")
    only(raw, _TEMPLATE_KEYS, where)
    if not raw.get("destination"):
        raise ConfigError(f"{where}.destination is required")
    if bool(raw.get("source")) == (raw.get("contents") is not None):
        raise ConfigError(f"{where}: give exactly one of source and contents")
    name = str(raw.get("name") or os.path.basename(str(raw["destination"])))
    return TemplateConfig(
        name=name,
        destination=str(raw["destination"]),
        source=str(raw.get("source") or ""),
        contents=raw.get("contents"),
        user=raw.get("user", raw.get("owner")),
        group=raw.get("group"),
        mode=_mode(raw.get("mode", raw.get("perms")), where + ".mode"),
        check=upgrade_placeholder(_command(raw.get("check"), where + ".check")),
        command=_command(raw.get("command"), where + ".command"),
        command_timeout=duration(raw.get("command_timeout", 30), where + ".command_timeout"),
        wait=_wait(raw["wait"], where + ".wait") if raw.get("wait") is not None else None,
        error_on_missing_key=_flag(raw, "error_on_missing_key", True, where),
        missing_consul_key=_missing_consul_key(raw, where),
        max_drop=share(raw.get("max_drop"), where + ".max_drop"),
        max_drop_window=_window(raw, where),
    )


def _watch(raw: Any) -> WatchSettings:
    only(raw, ("block_wait", "min_interval", "backoff", "max_backoff", "max_stale"), "watch")
    settings = WatchSettings(**{name: duration(value, f"watch.{name}") for name, value in raw.items()})
    settings.block_wait = min(settings.block_wait, MAX_BLOCK_WAIT)
    if settings.block_wait < 1:
        raise ConfigError("watch.block_wait must be at least 1s")
    if settings.backoff <= 0 or settings.max_backoff < settings.backoff:
        raise ConfigError("watch.backoff must be more than 0, and watch.max_backoff not below it")
    return settings


def parse(raw: dict, environ=None) -> Config:
    """A Config from the decoded JSON document; raises ConfigError naming the bad setting."""
    if not isinstance(raw, dict):
        raise ConfigError("the configuration must be a JSON object")
    only(raw, ("consul", "wait", "watch", "templates", "exec", "status", "log_level", "state_dir"), "config")
    config = Config(consul=parse_settings(raw.get("consul"), os.environ if environ is None else environ))
    if raw.get("wait") is not None:
        config.wait = _wait(raw["wait"], "wait")
    config.watch = _watch(raw.get("watch") or {})
    templates = raw.get("templates") or []
    if not isinstance(templates, list):
        raise ConfigError("templates: expected a list")
    config.templates = [parse_template(item, index) for index, item in enumerate(templates)]
    names = [template.name for template in config.templates]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError("templates: names must be unique, repeated: {}".format(", ".join(duplicates)))
    execution = raw.get("exec") or {}
    only(execution, ("command", "reload_signal", "kill_signal", "kill_timeout"), "exec")
    command = execution.get("command") or []
    if isinstance(command, str):
        command = ["/bin/sh", "-c", command]
    config.exec = ExecSettings(
        command=list(command),
        reload_signal=signal_number(execution.get("reload_signal", "SIGHUP"), "exec.reload_signal"),
        kill_signal=signal_number(execution.get("kill_signal", "SIGTERM"), "exec.kill_signal") or int(signal.SIGTERM),
        kill_timeout=duration(execution.get("kill_timeout", 10), "exec.kill_timeout"),
    )
    status = raw.get("status") or {}
    only(status, ("address", "port"), "status")
    port = status.get("port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535):
        raise ConfigError("status.port: expected a port number")
    config.status = StatusSettings(address=str(status.get("address", "127.0.0.1")), port=port)
    config.log_level = log_level(raw.get("log_level", "info"))
    config.state_dir = _state_dir(raw.get("state_dir"))
    return config


def _state_dir(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not os.path.isabs(raw) or os.path.normpath(raw) != raw.rstrip("/"):
        raise ConfigError(f"state_dir: expected one clean absolute path, got {raw!r}")
    return os.path.normpath(raw)


def load(path: str, environ=None) -> Config:
    return parse(read_json(path), environ)
