# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drain on stop: the labels' grammar, the due-list of drains in progress, and where it is kept across restarts.

The app module gives each service a stop signal the app ignores (SIGURG) and
labels its containers with the drain window and the app's real stop signal.
When Docker or Swarm stops such a container, the registrator sees a kill event
with SIGURG: it withdraws the instance at once, waits the window, then sends
the real signal itself. Docker's SIGKILL comes only at the service's
stop_grace_period (the window plus the app's own grace).

Pure but for DrainStore (one small JSON file). Times are wall-clock seconds
(time.time()), so that a drain's deadline means the same after a restart.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass

from ..daemon.config import ConfigError, duration
from .state_file import write_json

DRAIN_TIMEOUT_LABEL = "org.dockyard.drain_timeout"
STOP_SIGNAL_LABEL = "org.dockyard.stop_signal"
DEFAULT_STOP_SIGNAL = "SIGTERM"
MAX_DRAIN_TIMEOUT = 3600.0  # an hour: past that, a label is a mistake rather than a drain

# Linux's numbers: the engine reports a kill's signal as its number, and containers run on Linux whatever runs us.
DRAIN_SIGNAL = 23  # SIGURG: its default action is to ignore it, and PID 1 ignores a signal it has no handler for
STOP_SIGNALS = {
    "SIGHUP": 1,
    "SIGINT": 2,
    "SIGQUIT": 3,
    "SIGABRT": 6,
    "SIGKILL": 9,
    "SIGUSR1": 10,
    "SIGUSR2": 12,
    "SIGALRM": 14,
    "SIGTERM": 15,
    "SIGWINCH": 28,  # Apache httpd's graceful stop
}
_SIGNAL_NAMES = {number: name for name, number in STOP_SIGNALS.items()}
_SIGNAL = re.compile(r"(?:SIG)?([A-Z][A-Z0-9]{1,7})|([1-9][0-9]?)")
_CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}")
_CONTAINER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,1023}")  # the engine's grammar for names


class LabelError(ValueError):
    """A drain label's value is outside its grammar; the message names the label."""


def parse_drain_timeout(value) -> float:
    """Seconds from the label's value: a duration (daemon.config.duration()'s grammar), from 0 to an hour."""
    try:
        seconds = duration(value, f"label {DRAIN_TIMEOUT_LABEL}")
    except ConfigError as error:
        raise LabelError(str(error)) from None
    if seconds > MAX_DRAIN_TIMEOUT:
        raise LabelError(f"label {DRAIN_TIMEOUT_LABEL}: must be at most {MAX_DRAIN_TIMEOUT:g}s, got {value!r}")
    return seconds


def parse_stop_signal(value) -> str:
    """The canonical name (SIGTERM) of the label's value: SIGTERM, TERM or 15, of the known stop signals."""
    match = _SIGNAL.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise LabelError(f"label {STOP_SIGNAL_LABEL}: expected a signal such as SIGTERM, TERM or 15, got {value!r}")
    name = f"SIG{match.group(1)}" if match.group(1) else _SIGNAL_NAMES.get(int(match.group(2)))
    if name == "SIGURG" or match.group(2) == str(DRAIN_SIGNAL):
        raise LabelError(f"label {STOP_SIGNAL_LABEL}: SIGURG starts the drain, it cannot also end it")
    if name not in STOP_SIGNALS:
        known = ", ".join(sorted(STOP_SIGNALS, key=STOP_SIGNALS.get))
        raise LabelError(f"label {STOP_SIGNAL_LABEL}: {value!r} is not one of the stop signals {known}")
    return name


def is_drained(labels: dict) -> bool:
    """Whether a SIGURG kill stops the container (through a drain) rather than being a control signal."""
    return DRAIN_TIMEOUT_LABEL in labels


def settings_of(labels: dict) -> tuple[float, str, list]:
    """(window in seconds, real stop signal, problems): a bad label means no window, and SIGTERM for a bad signal.

    A container told to stop is never left half-stopped: the errors are logged, and it is stopped at once.
    """
    problems = []
    try:
        window = parse_drain_timeout(labels.get(DRAIN_TIMEOUT_LABEL))
    except LabelError as error:
        window = 0.0
        problems.append(str(error))
    try:
        stop_signal = parse_stop_signal(labels.get(STOP_SIGNAL_LABEL, DEFAULT_STOP_SIGNAL))
    except LabelError as error:
        stop_signal = DEFAULT_STOP_SIGNAL
        window = 0.0
        problems.append(str(error))
    return window, stop_signal, problems


@dataclass(frozen=True)
class Drain:
    container: str  # the container's full ID
    name: str  # its name, for the logs
    due: float  # when the real stop signal is sent (wall clock)
    signal: str  # the real stop signal, canonical (SIGTERM)
    attempts: int = 0  # sends that failed because the engine did not answer


class DueList:
    """The drains in progress, one per container, each until its stop signal is sent or the container is gone."""

    def __init__(self, drains=()):
        self._drains = {drain.container: drain for drain in drains}

    def __contains__(self, container: str) -> bool:
        return container in self._drains

    def __len__(self) -> int:
        return len(self._drains)

    def drains(self) -> list:
        return sorted(self._drains.values(), key=lambda drain: (drain.due, drain.container))

    def add(self, drain: Drain) -> bool:
        """False when the container is draining already: a second stop does not move its deadline."""
        if drain.container in self._drains:
            return False
        self._drains[drain.container] = drain
        return True

    def cancel(self, container: str) -> Drain | None:
        return self._drains.pop(container, None)

    def pop_due(self, now: float) -> list:
        """The drains whose window has passed, earliest first, taken off the list."""
        due = [drain for drain in self.drains() if drain.due <= now]
        for drain in due:
            del self._drains[drain.container]
        return due

    def keep_only(self, containers: set) -> list:
        """Drops (and returns) the drains of containers not in containers: they are gone."""
        gone = [drain for drain in self.drains() if drain.container not in containers]
        for drain in gone:
            del self._drains[drain.container]
        return gone

    def next_due(self) -> float:
        return min((drain.due for drain in self._drains.values()), default=math.inf)


class StateError(ValueError):
    """The drains file cannot be read back; the message names the file and what is wrong."""


def _drain_from(entry, where: str) -> Drain:
    if not isinstance(entry, dict) or set(entry) != {"container", "name", "due", "signal"}:
        raise StateError(f"{where}: expected an object with container, name, due and signal")
    container, name, due = entry["container"], entry["name"], entry["due"]
    if not (isinstance(container, str) and _CONTAINER_ID.fullmatch(container)):
        raise StateError(f"{where}.container: expected a container ID, got {container!r}")
    if not (isinstance(name, str) and _CONTAINER_NAME.fullmatch(name)):
        raise StateError(f"{where}.name: expected a container name, got {name!r}")
    if isinstance(due, bool) or not isinstance(due, (int, float)) or not math.isfinite(due):
        raise StateError(f"{where}.due: expected a time in seconds, got {due!r}")
    try:
        stop_signal = parse_stop_signal(entry["signal"])
    except LabelError as error:
        raise StateError(f"{where}.signal: {error}") from None
    return Drain(container, name, float(due), stop_signal)


class DrainStore:
    """The drains in progress, kept in <state_dir>/drains.json so that a restarted registrator finishes them."""

    def __init__(self, state_dir: str):
        self.path = os.path.join(state_dir, "drains.json")

    def load(self) -> list:
        """The drains saved by an earlier run ([] when none); StateError when the file is unreadable or foreign."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                document = json.load(handle)
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as error:
            raise StateError(f"{self.path}: cannot read it: {error}") from None
        if not isinstance(document, dict) or set(document) != {"drains"} or not isinstance(document["drains"], list):
            raise StateError(f"{self.path}: expected an object with one list, drains")
        return [_drain_from(entry, f"{self.path}: drains[{index}]") for index, entry in enumerate(document["drains"])]

    def save(self, drains: list) -> None:
        """Replaces the file atomically (a crash leaves the old one or the new one); raises OSError."""
        document = {
            "drains": [
                {"container": drain.container, "name": drain.name, "due": drain.due, "signal": drain.signal}
                for drain in drains
            ]
        }
        write_json(self.path, document)
