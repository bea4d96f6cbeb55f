import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.retry import backoff_delay


@pytest.mark.parametrize("attempt", [1, 2, 5, 40, 10000])
def test_backoff_doubles_up_to_the_cap_with_jitter_into_its_upper_half(attempt):
    low = backoff_delay(attempt, 0.25, 5, rand=lambda: 0)
    high = backoff_delay(attempt, 0.25, 5, rand=lambda: 1)
    expected = min(5, 0.25 * 2 ** min(attempt - 1, 32))
    assert (low, high) == (expected / 2, expected)
    assert backoff_delay(attempt, 0.25, 5, rand=lambda: 0.5) == expected * 0.75
