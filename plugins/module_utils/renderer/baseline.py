# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The max_drop baseline: per ls()/tree() prefix, the most entries a live render held within a window.

A render is refused when an ls()/tree() fell by max_drop or more from the
largest count that was live at any moment of the last `max_drop_window`.
Weighing every render against that high-water mark, not against the render
before it, is what stops one-key-at-a-time deletes or a slow drain from
emptying the file step by step. Growth raises the mark at once; an accepted
drop (the operator's override) resets it to the accepted counts.

With a state directory the baseline is kept on disk, rewritten atomically
whenever it changes, so a restarted daemon weighs its first render against
it. A state file that is not valid, or that another template wrote, is
reported through `problem` and ignored: the daemon starts without a baseline
rather than stopping.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field

STATE_FORMAT = "dockyard-renderer-max-drop/1"
FUNCTIONS = ("ls", "tree")
MAX_STATE_BYTES = 1 << 20  # a baseline holds a few numbers per prefix; anything this large is not ours


class StateError(ValueError):
    """The state file is not a baseline this template wrote."""


@dataclass
class Peaks:
    """One prefix's history: the count live now, and earlier counts with the wall-clock time they stopped being live.

    `past` keeps only counts no later one matched or beat (so it stays short):
    counts fall and times rise from its first entry to its last.
    """

    live: int
    past: list = field(default_factory=list)  # [until, count]

    def largest(self, since: float) -> int:
        return max([self.live] + [count for until, count in self.past if until >= since])

    def supersede(self, count: int, now: float, since: float) -> None:
        """count replaces the live count at `now`; history before `since` is forgotten."""
        past = [entry for entry in self.past if entry[0] >= since]
        while past and past[-1][1] <= self.live:
            past.pop()
        past.append([now, self.live])
        self.past, self.live = past, count


def state_path(state_dir: str, template: str) -> str:
    """The state file of a template; its name quoted so that any template name is one file name."""
    return os.path.join(state_dir, urllib.parse.quote(template, safe="") + ".max-drop.json")


class Baseline:
    """The max_drop baseline of one template, persisted to `path` when one is given."""

    def __init__(self, template: str, destination: str, path: str | None = None, clock=time.time):
        self.template = template
        self.destination = destination
        self.path = path
        self.clock = clock
        self.peaks: dict = {}  # (function, prefix) -> Peaks
        self.problem: str | None = None  # why the state file was ignored
        if path is not None:
            try:
                self.peaks = self._read(path)
            except StateError as error:
                self.problem = str(error)

    def fall(self, sizes: dict, limit: float, window: float) -> tuple | None:
        """((function, prefix), largest, now) of the first ls()/tree() that fell by `limit` or more, else None."""
        since = self.clock() - window
        for name, now in sorted(sizes.items()):
            peaks = self.peaks.get(name)
            if peaks is None:
                continue
            largest = peaks.largest(since)
            if largest > 0 and now < largest and (largest - now) / largest >= limit:
                return name, largest, now
        return None

    def record(self, sizes: dict, window: float) -> None:
        """The counts of a render that went live (or found the live file right). Raises OSError if not saved."""
        now = self.clock()
        changed = set(sizes) != set(self.peaks)  # a prefix the template no longer reads is forgotten
        peaks = {}
        for name, count in sizes.items():
            known = self.peaks.get(name)
            if known is None:
                known = Peaks(count)
            elif known.live != count:
                known.supersede(count, now, now - window)
                changed = True
            peaks[name] = known
        self.peaks = peaks
        if changed:
            self._save()

    def reset(self, sizes: dict) -> None:
        """An accepted drop: the accepted counts become the baseline. Raises OSError if not saved."""
        self.peaks = {name: Peaks(count) for name, count in sizes.items()}
        self._save()

    # -- the state file --------------------------------------------------------------
    @staticmethod
    def _snapshot(peaks: dict) -> list:
        return sorted([function, prefix, entry.live, entry.past] for (function, prefix), entry in peaks.items())

    def dump(self) -> str:
        document = {
            "format": STATE_FORMAT,
            "template": self.template,
            "destination": self.destination,
            "prefixes": [
                {"function": function, "prefix": prefix, "live": live, "past": past}
                for function, prefix, live, past in self._snapshot(self.peaks)
            ],
        }
        return json.dumps(document, indent=1, sort_keys=True) + "\n"

    def _read(self, path: str) -> dict:
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as error:
            raise StateError(f"cannot read {path}: {error.strerror}") from None
        if len(data) > MAX_STATE_BYTES:
            raise StateError(f"{path}: larger than {MAX_STATE_BYTES} bytes")
        return parse_state(data, self.template, self.destination, path)

    def _save(self) -> None:
        if self.path is None:
            return
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".max-drop.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(self.dump())
                stream.flush()
                os.fsync(stream.fileno())
            os.rename(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _count(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StateError(f"{where}: expected a count of entries, got {value!r}")
    return value


def _instant(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StateError(f"{where}: expected a time in seconds, got {value!r}")
    return float(value)


def _peaks(raw, where: str) -> tuple:
    if not isinstance(raw, dict) or set(raw) != {"function", "prefix", "live", "past"}:
        raise StateError(f"{where}: expected function, prefix, live and past")
    if raw["function"] not in FUNCTIONS or not isinstance(raw["prefix"], str):
        raise StateError(f"{where}: expected ls or tree and a prefix")
    if not isinstance(raw["past"], list):
        raise StateError(f"{where}.past: expected a list")
    past = []
    for index, entry in enumerate(raw["past"]):
        if not isinstance(entry, list) or len(entry) != 2:
            raise StateError(f"{where}.past[{index}]: expected [time, count]")
        past.append([_instant(entry[0], f"{where}.past[{index}][0]"), _count(entry[1], f"{where}.past[{index}][1]")])
    return (raw["function"], raw["prefix"]), Peaks(_count(raw["live"], f"{where}.live"), sorted(past))


def parse_state(data: bytes, template: str, destination: str, path: str = "state file") -> dict:
    """(function, prefix) -> Peaks from a state file's bytes; StateError naming what is wrong."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise StateError(f"{path}: not JSON ({error})") from None
    if not isinstance(raw, dict) or raw.get("format") != STATE_FORMAT:
        raise StateError(f"{path}: not a max_drop baseline (format {STATE_FORMAT})")
    if set(raw) != {"format", "template", "destination", "prefixes"} or not isinstance(raw["prefixes"], list):
        raise StateError(f"{path}: expected format, template, destination and prefixes")
    if (raw["template"], raw["destination"]) != (template, destination):
        raise StateError(
            f"{path}: written for template {raw['template']!r} with destination {raw['destination']!r},"
            f" not {template!r} with {destination!r}"
        )
    peaks = dict(_peaks(entry, f"{path}: prefixes[{index}]") for index, entry in enumerate(raw["prefixes"]))
    if len(peaks) != len(raw["prefixes"]):
        raise StateError(f"{path}: a prefix is listed twice")
    return peaks
