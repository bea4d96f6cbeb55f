# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reporter's loop: read HAProxy, write the router's report when it is due, keep a status file.

One thread. Every poll_interval it asks HAProxy's master CLI for the current
worker's server state (haproxy.MasterCLI.snapshot) and builds the report; the
schedule says when to write it (a change, at most every min_interval; the same
content, every heartbeat). A write is one plain PUT of the router's own key.

Nothing stops the loop: a failed read or write is logged, counted and retried
with back-off. While HAProxy cannot be read, nothing is written (a reload's
gap is short); past error_after the report says so (no backends, an error),
so readers do not take an old state for a live one.

The status file (status_file, JSON, replaced atomically) is the health signal
for systemd and operators: `--mode health` reads it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import tempfile
import threading
import time

from ..daemon import logs
from ..daemon.consul import ConsulClient, ConsulError, kv_path
from ..daemon.retry import backoff_delay
from .haproxy import HaproxyError, MasterCLI, ParseError
from .report import MAX_ERROR, MAX_REPORT_BYTES, Report
from .schedule import Schedule

HEALTHY_HEARTBEATS = 2  # the status is unhealthy when no write succeeded for this many heartbeats


def printable(text: str) -> str:
    """Text for a report's error: printable characters only, at most MAX_ERROR."""
    return "".join(char if char.isprintable() else "?" for char in text)[:MAX_ERROR]


class Reporter:
    def __init__(self, config, client=None, haproxy=None, clock=time.monotonic, wall=time.time):
        self.config = config
        self.client = client or ConsulClient(config.consul)
        self.haproxy = haproxy or MasterCLI(config.master_socket)
        self.clock = clock  # monotonic: the schedule and back-off
        self.wall = wall  # the reports' `updated`, which readers on other hosts compare with their own clocks
        self.schedule = Schedule(config.min_interval, config.heartbeat)
        self.report = None  # the report to write: None while HAProxy's state is unknown
        self.failures = {"haproxy": 0, "parse": 0, "consul": 0}  # counted since the start
        self.read_failures = 0  # consecutive
        self.unreadable_since = None
        self.next_poll = -math.inf
        self.last_write = None  # wall clock of the last write Consul took
        self.last_error = ""
        self._stop = threading.Event()

    def stop(self) -> None:
        """Asks the loop to end (safe from a signal handler)."""
        self._stop.set()

    # -- HAProxy ---------------------------------------------------------------------
    def observe(self, now: float) -> None:
        """Reads HAProxy's live state into self.report; schedules the next read."""
        try:
            snapshot = self.haproxy.snapshot()
        except (HaproxyError, ParseError) as error:
            self._unreadable(now, error)
            return
        if self.read_failures:
            logs.event(logging.INFO, "HAProxy answers again", after_failures=self.read_failures)
        self.read_failures, self.unreadable_since = 0, None
        self.next_poll = now + self.config.poll_interval
        report = Report(
            node=self.config.node,
            updated=0.0,
            heartbeat_ms=self.config.heartbeat_ms,
            reloads=snapshot.reloads,
            worker=snapshot.worker,
            backends=snapshot.backends,
        )
        size = len(report.value())
        if size > MAX_REPORT_BYTES:
            error = f"{report.servers()} servers make a report of {size} bytes, more than {MAX_REPORT_BYTES}"
            report = dataclasses.replace(report, backends={}, error=error)
        self.report = report

    def _unreadable(self, now: float, error: Exception) -> None:
        kind = "parse" if isinstance(error, ParseError) else "haproxy"
        self.failures[kind] += 1
        self.read_failures += 1
        self.last_error = str(error)
        if self.unreadable_since is None:
            self.unreadable_since = now
        delay = backoff_delay(self.read_failures, self.config.backoff, self.config.max_backoff)
        self.next_poll = now + delay
        # A single refused or reset connection is a reload's gap (the master re-executes): a warning from the second.
        level = logging.ERROR if kind == "parse" else logging.WARNING if self.read_failures > 1 else logging.INFO
        message = "HAProxy's answer does not parse" if kind == "parse" else "cannot read HAProxy's state"
        logs.event(level, message, attempt=self.read_failures, retry_in=f"{delay:.2f}s", error=error)
        if now - self.unreadable_since >= self.config.error_after:
            # No elapsed time in the text: the same failure is the same content, written only at the heartbeat.
            unreadable = f"HAProxy unreadable for more than {self.config.error_after:g}s: {error}"
            self.report = Report(self.config.node, 0.0, self.config.heartbeat_ms, error=printable(unreadable))
        else:
            self.report = None
        self.write_status()

    # -- Consul ----------------------------------------------------------------------
    def publish(self, now: float) -> bool:
        """One PUT of the router's key with the current report; False (retried after a back-off) when it failed."""
        report = dataclasses.replace(self.report, updated=self.wall())
        content = report.content()
        try:
            answer = self.client.request("PUT", kv_path(self.config.key), body=report.value())
            if answer.json() is not True:
                raise ConsulError(f"consul answered {answer.status} without taking the write", answer.status)
        except ConsulError as error:
            self.failures["consul"] += 1
            self.last_error = str(error)
            delay = backoff_delay(self.schedule.failures + 1, self.config.backoff, self.config.max_backoff)
            self.schedule.failed(now, delay)
            level = logging.ERROR if error.status in (401, 403) else logging.WARNING
            logs.event(
                level,
                "cannot write the report, retrying",
                key=self.config.key,
                attempt=self.schedule.failures,
                retry_in=f"{delay:.2f}s",
                error=error,
            )
            self.write_status()
            return False
        changed = content != self.schedule.written
        self.schedule.wrote(content, now)
        self.last_write = report.updated
        logs.event(
            logging.WARNING if report.error else logging.INFO if changed else logging.DEBUG,
            "report written" if changed else "heartbeat written",
            key=self.config.key,
            reloads=report.reloads,
            backends=len(report.backends),
            servers=report.servers(),
            up=sum(server.state == "UP" for servers in report.backends.values() for server in servers.values()),
            **({"error": report.error} if report.error else {}),
        )
        self.write_status()
        return True

    # -- the loop --------------------------------------------------------------------
    def step(self) -> float:
        """One turn: read HAProxy when due, write the report when due; returns how long to wait."""
        now = self.clock()
        if now >= self.next_poll:
            self.observe(now)
        due = math.inf
        if self.report is not None:
            due = self.schedule.due_at(self.report.content())
            if now >= due:
                self.publish(now)
                due = self.schedule.due_at(self.report.content())
        return max(0.0, min(self.next_poll, due) - self.clock())

    def run(self) -> None:
        config = self.config
        logs.event(
            logging.INFO,
            "router reporter started",
            node=config.node,
            key=config.key,
            consul=config.consul.base_url,
            master_socket=config.master_socket,
            heartbeat=f"{config.heartbeat:g}s",
        )
        while not self._stop.is_set():
            self._stop.wait(self.step())
        logs.event(logging.INFO, "router reporter stopped", failures=json.dumps(self.failures, sort_keys=True))

    # -- status ----------------------------------------------------------------------
    def status(self) -> dict:
        limit = HEALTHY_HEARTBEATS * self.config.heartbeat
        fresh = self.last_write is not None and self.wall() - self.last_write <= limit
        return {
            "node": self.config.node,
            "key": self.config.key,
            "healthy": fresh and self.read_failures == 0 and self.schedule.failures == 0,
            "last_write": self.last_write,
            "heartbeat": self.config.heartbeat,
            "failures": dict(self.failures),
            "last_error": printable(self.last_error),
        }

    def write_status(self) -> None:
        """Replaces the status file atomically; a failure is logged, never fatal."""
        path = self.config.status_file
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".router-status-")
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(self.status(), stream, sort_keys=True)
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except OSError as error:
            logs.event(logging.WARNING, "cannot write the status file", path=path, error=error)


def health(status: dict, now: float) -> tuple:
    """(healthy, one line saying why) from a status file's document."""
    last_write = status.get("last_write")
    heartbeat = status.get("heartbeat") or 0
    if last_write is None:
        return False, f"no report written yet; last error: {status.get('last_error') or 'none'}"
    age = now - last_write
    if age > HEALTHY_HEARTBEATS * heartbeat:
        return False, f"last report written {age:.0f}s ago; last error: {status.get('last_error') or 'none'}"
    if not status.get("healthy"):
        return False, f"failing: {status.get('last_error') or 'unknown'}"
    return True, f"report {status.get('key')} written {age:.0f}s ago"
