# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Configuration values the daemons read alike: the error that names a setting, and durations."""

from __future__ import annotations

import json
import re
from typing import Any

# The platform's one duration grammar: a number with an optional unit (seconds
# without one), matched whole, no spaces. Daemons, the routing schema and the
# roles' preflights (filter dockyard.platform.seconds, test
# dockyard.platform.duration) all read durations through it.
_DURATION = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,9})?)(ms|s|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the offending setting."""


def duration(value: Any, name: str) -> float:
    """Seconds from a number or a string such as "250ms", "2s", "5m", "1.5h" or "30" (seconds)."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a duration, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.fullmatch(value) if isinstance(value, str) else None
        if not match:
            raise ConfigError(f"{name}: expected a duration such as 2s or 500ms, got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not 0 <= seconds < float("inf"):
        raise ConfigError(f"{name}: must be a finite duration, not negative, got {value!r}")
    return seconds


LOG_LEVELS = ("debug", "info", "warning", "error")


def only(section: dict, allowed: tuple, where: str) -> None:
    """Refuses settings the section does not know, so a typo is an error rather than a default."""
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise ConfigError("{}: unknown setting(s) {}".format(where, ", ".join(unknown)))


def log_level(value: Any) -> str:
    level = str(value).lower()
    if level not in LOG_LEVELS:
        raise ConfigError("log_level: expected debug, info, warning or error")
    return level


def readable_file(path: str, name: str) -> None:
    """Raises ConfigError naming the setting unless path is a file this process can open for reading."""
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise ConfigError(f"{name}: cannot read {path}: {error.strerror}") from None


def read_json(path: str) -> Any:
    """The decoded JSON document at path; ConfigError when it cannot be read or decoded."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None
