"""Polling for the integration suites: wait until a condition holds, or fail naming it."""

import time


def wait_for(predicate, timeout: float, interval: float = 0.02, what: str = "condition"):
    """Polls predicate until it returns a truthy value; fails the test naming what it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
