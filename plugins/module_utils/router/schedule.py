# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When a router's report is due: pure, on a monotonic clock the caller reads.

- the first report: at once;
- a changed report: at least min_interval after the last write (the rate limit);
- an unchanged one: heartbeat after the last write, so a reader can tell a
  quiet router from a dead reporter;
- after a failed write: not before the back-off delay the caller gives.
"""

from __future__ import annotations

import math


class Schedule:
    def __init__(self, min_interval: float, heartbeat: float):
        self.min_interval = min_interval
        self.heartbeat = heartbeat
        self.written = None  # the content of the last report Consul took
        self.written_at = -math.inf
        self.retry_at = -math.inf
        self.failures = 0  # consecutive failed writes

    def due_at(self, content) -> float:
        """The monotonic time from which content is to be written."""
        if self.written is None:
            due = -math.inf
        elif content != self.written:
            due = self.written_at + self.min_interval
        else:
            due = self.written_at + self.heartbeat
        return max(due, self.retry_at)

    def wrote(self, content, now: float) -> None:
        self.written, self.written_at = content, now
        self.retry_at, self.failures = -math.inf, 0

    def failed(self, now: float, delay: float) -> None:
        self.failures += 1
        self.retry_at = now + delay
