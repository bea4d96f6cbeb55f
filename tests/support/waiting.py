"""The one wait of every Python test suite: poll until a condition holds, or fail naming it.

The integration suites import it through tests/conftest.py's directory; the
Molecule verifiers through the PYTHONPATH .config/molecule/config.yml gives them.
"""

import time


def wait_for(predicate, timeout: float, interval: float = 0.02, what: str = "condition", detail=None):
    """Polls predicate until it returns a truthy value, and returns that value.

    Past timeout seconds (on the monotonic clock) it fails the test naming what it
    waited for, and, when detail is given, what detail() reads at that moment.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f"; {detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{seen}")
        time.sleep(interval)
