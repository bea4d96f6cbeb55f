# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watching one dependency with Consul blocking queries, by Consul's own rules.

- Each query carries the last index and a wait (at most ten minutes), so an
  idle dependency holds exactly one outstanding query and costs nothing else.
  Consul may hold a query up to wait/16 longer (its jitter); the wait sent is
  shortened by that much, so every query is answered within block_wait.
- An answer with the same index is no news; an index that goes backwards
  (a snapshot restore, another agent) restarts from 0; an index below 1 is
  raised to 1, so that the next query blocks rather than polls.
- Errors, of any kind, back off exponentially with jitter, up to a cap, and
  retry forever: the view never dies of one. Its consecutive failures are its
  own, and go with it when it stops.
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

# Consul adds up to wait/16 of random time to a blocking query's wait.
CONSUL_WAIT_JITTER = 1 / 16


def next_index(last: int, returned: int) -> int:
    """The index for the next query after an answer carrying `returned`."""
    if returned < 1:
        return 1  # Consul's own sanity rule: at least 1, so that the next query blocks rather than polls
    if returned < last:
        return 0  # went backwards: start over with a query that does not block
    return returned


def query_wait(block_wait: float) -> float:
    """The wait to send so that Consul answers within block_wait, its jitter included."""
    return block_wait / (1 + CONSUL_WAIT_JITTER)


class Stats:
    """Totals the status endpoint reports, over every view."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.errors = 0

    def request(self) -> None:
        with self.lock:
            self.requests += 1

    def failed(self) -> None:
        with self.lock:
            self.errors += 1


class View(threading.Thread):
    """A thread that keeps one dependency's data current and reports changes to `deliver`.

    failures is the number of queries in a row that failed; a view that
    replaces a dead one starts from its count, so its back-off goes on.
    """

    def __init__(self, dependency, client, settings, deliver, stats: Stats | None = None, failures: int = 0):
        super().__init__(name=f"watch {dependency}", daemon=True)
        self.dependency = dependency
        self.client = client
        self.settings = settings
        self.deliver = deliver
        self.stats = stats or Stats()
        self.failures = failures
        self.index = 0
        self._received = False
        self._last = None
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        if self.failures:
            self._stop_event.wait(self._backoff())
        while not self._stop_event.is_set():
            started = time.monotonic()
            try:
                self._query()
            except Exception as error:  # a truncated answer or a bug must cost a retry, never the watch
                self._failed(error)
                continue
            # Rate limit: whatever Consul answered, do not ask again sooner than min_interval.
            elapsed = time.monotonic() - started
            if elapsed < self.settings.min_interval:
                self._stop_event.wait(self.settings.min_interval - elapsed)

    def _query(self) -> None:
        self.stats.request()
        wait = query_wait(self.settings.block_wait)
        data, returned = self.dependency.fetch(self.client, self.index, wait)
        if self.stopping:
            return
        if self.failures:
            logs.event(logging.INFO, "query succeeded again", dependency=self.dependency, after_failures=self.failures)
            self.failures = 0
        same_index = returned == self.index and self.index > 0
        self.index = next_index(self.index, returned)
        if not same_index and (not self._received or data != self._last):
            self._received, self._last = True, data
            self.deliver(self.dependency, data)

    def _failed(self, error: Exception) -> None:
        if self.stopping:
            return
        self.stats.failed()
        self.failures += 1
        delay = self._backoff()
        fields = {"dependency": self.dependency, "attempt": self.failures, "retry_in": f"{delay:.2f}s"}
        if isinstance(error, ConsulError):
            logs.event(logging.WARNING, "query failed, retrying", error=error, **fields)
        else:
            logs.event(logging.ERROR, "watch error, retrying", error=f"{type(error).__name__}: {error}", **fields)
        # Start over from 0: the agent that answers next may be a new one with lower indexes.
        self.index = 0
        self._stop_event.wait(delay)

    def _backoff(self) -> float:
        return backoff_delay(self.failures, self.settings.backoff, self.settings.max_backoff)
