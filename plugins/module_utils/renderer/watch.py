# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watching one dependency with Consul blocking queries, by Consul's own rules.

- Each query carries the last index and a wait (at most ten minutes), so an
  idle dependency holds exactly one outstanding query and costs nothing else.
- An answer with the same index is no news; an index that goes backwards or
  is not above 0 restarts from 0.
- Errors back off exponentially with jitter, up to a cap, and retry forever.
- A rate limit keeps a churning key from turning the watch into a poll loop:
  no two queries start closer together than min_interval.
"""

from __future__ import annotations

import logging
import threading
import time

from ..daemon import logs
from ..daemon.consul import ConsulError
from ..daemon.retry import backoff_delay


def next_index(last: int, returned: int) -> int:
    """The index for the next query after an answer carrying `returned`."""
    if returned <= 0 or returned < last:
        return 0
    return returned


class Stats:
    """Counters the status endpoint reports; updated by every view."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.errors = 0
        self.failures = {}  # dependency -> consecutive failed queries

    def request(self) -> None:
        with self.lock:
            self.requests += 1

    def failed(self, dependency) -> int:
        with self.lock:
            self.errors += 1
            self.failures[dependency] = self.failures.get(dependency, 0) + 1
            return self.failures[dependency]

    def succeeded(self, dependency) -> int:
        with self.lock:
            return self.failures.pop(dependency, 0)


class View(threading.Thread):
    """A thread that keeps one dependency's data current and reports changes to `deliver`."""

    def __init__(self, dependency, client, settings, deliver, stats: Stats | None = None):
        super().__init__(name=f"watch {dependency}", daemon=True)
        self.dependency = dependency
        self.client = client
        self.settings = settings
        self.deliver = deliver
        self.stats = stats or Stats()
        self.index = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        settings = self.settings
        received = False
        last = None
        while not self._stop_event.is_set():
            started = time.monotonic()
            self.stats.request()
            try:
                data, returned = self.dependency.fetch(self.client, self.index, settings.block_wait)
            except ConsulError as error:
                attempt = self.stats.failed(self.dependency)
                delay = backoff_delay(attempt, settings.backoff, settings.max_backoff)
                logs.event(
                    logging.WARNING,
                    "query failed, retrying",
                    dependency=self.dependency,
                    attempt=attempt,
                    retry_in=f"{delay:.2f}s",
                    error=error,
                )
                # Start over from 0: the agent that answers next may be a new one with lower indexes.
                self.index = 0
                self._stop_event.wait(delay)
                continue
            recovered = self.stats.succeeded(self.dependency)
            if recovered:
                logs.event(logging.INFO, "query succeeded again", dependency=self.dependency, after_failures=recovered)
            same_index = returned == self.index and self.index > 0
            self.index = next_index(self.index, returned)
            if not self._stop_event.is_set() and not same_index and (not received or data != last):
                received, last = True, data
                self.deliver(self.dependency, data)
            # Rate limit: whatever Consul answered, do not ask again sooner than min_interval.
            elapsed = time.monotonic() - started
            if elapsed < settings.min_interval:
                self._stop_event.wait(settings.min_interval - elapsed)
