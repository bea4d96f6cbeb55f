"""Must show: Consul down past consul-template's give-up point, then back.

consul-template gives up after 12 failed retries. With a back-off cap of 3 s
the daemon fails more than 12 times in about half a minute; it must still run,
and the first change after Consul returns must render within the cap plus 1 s.
"""

import time

import pytest
from renderer_helpers import consul_settings, wait_for

BACKOFF_CAP = 3.0
GIVE_UP_POINT = 12


@pytest.mark.slow
def test_daemon_outlives_a_long_outage_and_renders_soon_after(consul_private_agent, renderer, tmp_path):
    agent = consul_private_agent
    agent.put("outage/value", "before")
    live = tmp_path / "outage.conf"
    daemon = renderer(
        {
            "consul": consul_settings(agent),
            "wait": {"min": 0.1, "max": 1},
            "watch": {"backoff": "250ms", "max_backoff": BACKOFF_CAP},
            "templates": [{"name": "outage", "contents": "{{ key('outage/value') }}\n", "destination": str(live)}],
        }
    )
    daemon.wait_ready()
    assert live.read_text() == "before\n"

    agent.stop()
    wait_for(
        lambda: daemon.status()["consul"]["consecutive_failures"] > GIVE_UP_POINT,
        GIVE_UP_POINT * BACKOFF_CAP + 20,
        0.5,
        f"more than {GIVE_UP_POINT} consecutive failed queries",
    )
    assert daemon.alive()
    assert live.read_text() == "before\n"  # last good output kept

    agent.start()
    started = time.monotonic()
    agent.put("outage/value", "after")
    wait_for(lambda: live.read_text() == "after\n", BACKOFF_CAP + 5, 0.01, "the first render after Consul returned")
    elapsed = time.monotonic() - started
    print(f"first change after Consul returned rendered in {elapsed:.2f}s (cap {BACKOFF_CAP}s)")
    assert elapsed <= BACKOFF_CAP + 1
    assert daemon.alive()
    wait_for(lambda: daemon.status()["consul"]["consecutive_failures"] == 0, 5, what="the watch to recover")
