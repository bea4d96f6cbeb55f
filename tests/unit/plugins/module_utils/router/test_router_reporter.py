"""Must show: the reporter writes the first report at once, a change at most every min_interval, the same content
every heartbeat and not more often; a failed write is retried after a back-off and a failed read never stops the
loop; past error_after an unreadable HAProxy is reported as an error, never as the last state it showed.

HAProxy and Consul stand in here (a real one cannot be made to fail at a chosen tick): Master gives the
snapshots a test sets, Consul records the writes or fails them. The clock is the test's."""

import itertools
import json
from pathlib import Path

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul import ConsulError, Response
from ansible_collections.dockyard.platform.plugins.module_utils.router import config as configuration
from ansible_collections.dockyard.platform.plugins.module_utils.router.haproxy import (
    HaproxyError,
    ParseError,
    Server,
    Snapshot,
)
from ansible_collections.dockyard.platform.plugins.module_utils.router.reporter import Reporter, health
from ansible_collections.dockyard.platform.plugins.module_utils.router.schedule import Schedule

UP = {"app_web": {"node2-t1": Server("10.0.0.7", 31000, "UP", 1)}}
DOWN = {"app_web": {"node2-t1": Server("10.0.0.7", 31000, "DOWN", 1)}}


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Master:
    """Stands in for MasterCLI: returns the snapshot the test set, or raises the error it set."""

    def __init__(self):
        self.backends, self.reloads, self.error = UP, 1, None

    def snapshot(self):
        if self.error is not None:
            raise self.error
        return Snapshot(self.reloads, 4242, self.backends)


class Consul:
    """Stands in for ConsulClient.request: records each PUT, or fails it with the error the test set."""

    def __init__(self):
        self.writes, self.error = [], None

    def request(self, method, path, body=None, **_options):
        if self.error is not None:
            raise self.error
        self.writes.append((method, path, json.loads(body)))
        return Response(200, b"true", 1)


@pytest.fixture
def reporter(tmp_path):
    config = configuration.parse({"node": "node1", "status_file": str(tmp_path / "status.json")})
    clock = Clock()
    made = Reporter(config, client=Consul(), haproxy=Master(), clock=clock, wall=lambda: 1_700_000_000 + clock.now)
    return made


def run(reporter, seconds, tick=0.1):
    """Steps the loop for seconds of test time, tick by tick."""
    end = reporter.clock.now + seconds
    while reporter.clock.now < end - 1e-9:
        reporter.step()
        reporter.clock.now = round(reporter.clock.now + tick, 6)


def states(reporter):
    return [
        write[2]["backends"].get("app_web", {}).get("node2-t1", {}).get("state") for write in reporter.client.writes
    ]


def test_schedule_first_changed_heartbeat_and_retry():
    schedule = Schedule(min_interval=1.0, heartbeat=30.0)
    assert schedule.due_at("a") == float("-inf")
    schedule.wrote("a", 10.0)
    assert schedule.due_at("a") == 40.0
    assert schedule.due_at("b") == 11.0
    schedule.failed(12.0, 5.0)
    assert (schedule.due_at("b"), schedule.failures) == (17.0, 1)
    schedule.wrote("b", 17.0)
    assert (schedule.due_at("b"), schedule.failures) == (47.0, 0)


def test_first_report_at_once_then_only_the_heartbeat(reporter):
    run(reporter, 65)
    writes = reporter.client.writes
    assert [write[1] for write in writes] == ["/v1/kv/dockyard/routers/node1"] * 3, "t=0, 30, 60"
    value = writes[0][2]
    assert value == {
        "node": "node1",
        "updated": 1_700_000_100.0,
        "heartbeat_ms": 30000,
        "reloads": 1,
        "worker": 4242,
        "backends": {"app_web": {"node2-t1": {"addr": "10.0.0.7", "port": 31000, "state": "UP", "weight": 1}}},
    }
    assert [write[2]["updated"] - 1_700_000_000 for write in writes] == pytest.approx([100.0, 130.0, 160.0])


def test_changes_are_written_at_most_every_min_interval(reporter):
    run(reporter, 0.2)
    for backends in (DOWN, UP, DOWN, UP, DOWN):  # flapping every 200 ms
        reporter.haproxy.backends = backends
        run(reporter, 0.6)
    run(reporter, 2)
    times = [write[2]["updated"] - 1_700_000_100 for write in reporter.client.writes]
    assert all(later - earlier >= 1.0 - 1e-6 for earlier, later in itertools.pairwise(times)), times
    assert len(times) <= 5
    assert states(reporter)[-1] == "DOWN", "the last state is written once the rate limit allows"


def test_a_change_is_written_within_poll_plus_min_interval(reporter):
    run(reporter, 5)
    reporter.haproxy.backends = DOWN
    changed_at = reporter.clock.now
    run(reporter, 2)
    assert states(reporter)[-1] == "DOWN"
    assert reporter.client.writes[-1][2]["updated"] - 1_700_000_000 - changed_at <= 0.5 + 1e-6


def test_a_failed_write_is_retried_with_back_off_and_the_loop_goes_on(reporter):
    reporter.client.error = ConsulError("consul at http://127.0.0.1:8500 unreachable: refused")
    run(reporter, 10)
    assert reporter.client.writes == []
    attempts = reporter.failures["consul"]
    assert 3 <= attempts <= 12, "retried, with back-off rather than every tick"
    reporter.client.error = None
    run(reporter, 11)
    assert states(reporter) == ["UP"]
    assert reporter.schedule.failures == 0 and reporter.status()["healthy"]


def test_an_unreadable_haproxy_writes_nothing_then_an_error(reporter):
    run(reporter, 1)
    assert states(reporter) == ["UP"]
    reporter.haproxy.error = HaproxyError("HAProxy's master CLI /run/haproxy-master.sock: Connection refused")
    run(reporter, 3)
    assert len(reporter.client.writes) == 1, "a reload's gap: nothing written, the last report stands"
    run(reporter, 10)
    last = reporter.client.writes[-1][2]
    assert last["backends"] == {} and last["reloads"] is None
    assert last["error"].startswith("HAProxy unreadable for more than 5s: ") and "Connection refused" in last["error"]
    writes = len(reporter.client.writes)
    run(reporter, 20)
    assert len(reporter.client.writes) == writes, "the same failure is written again only at the heartbeat"
    reporter.haproxy.error = None
    run(reporter, 15)
    assert states(reporter)[-1] == "UP" and "error" not in reporter.client.writes[-1][2]


def test_a_parse_error_is_logged_with_the_line_and_counted(reporter, caplog):
    reporter.haproxy.error = ParseError(3, "2 app_web 1 s1 nope", "srv_addr: expected an IP address")
    with caplog.at_level("ERROR", logger="dockyard"):
        run(reporter, 1)
    assert reporter.failures["parse"] >= 1
    assert (
        "line 3: srv_addr: expected an IP address: '2 app_web 1 s1 nope'" in caplog.records[0].fields["error"].args[0]
    )


def test_a_report_over_the_limit_is_written_as_an_error(reporter):
    reporter.haproxy.backends = {
        f"app_{number}": {f"node{server}-task{number}": Server("10.0.0.7", 31000, "UP", 1) for server in range(50)}
        for number in range(100)
    }
    run(reporter, 1)
    written = reporter.client.writes[-1][2]
    assert written["backends"] == {}
    assert written["error"].startswith("5000 servers make a report of ") and "more than 262144" in written["error"]


def test_the_status_file_says_whether_reports_are_written(reporter):
    run(reporter, 1)
    status = json.loads(Path(reporter.config.status_file).read_text())
    assert status["healthy"] and status["key"] == "dockyard/routers/node1"
    assert health(status, status["last_write"] + 5) == (True, "report dockyard/routers/node1 written 5s ago")
    healthy, reason = health(status, status["last_write"] + 61)
    assert not healthy and reason.startswith("last report written 61s ago")
    reporter.client.error = ConsulError("consul answered HTTP 403 to PUT /v1/kv/dockyard/routers/node1: denied", 403)
    reporter.haproxy.backends = DOWN
    run(reporter, 2)
    status = json.loads(Path(reporter.config.status_file).read_text())
    assert not status["healthy"] and status["failures"]["consul"] >= 1
    assert health(status, status["last_write"] + 1) == (False, f"failing: {status['last_error']}")
    assert health({}, 0)[0] is False
