"""The deployment lock and ledger against a real ZooKeeper 3.8 on loopback.

Every test works in a chroot of its own on one shared server; the tests that
take ZooKeeper away run a server of their own.
"""

import json
import threading
import time

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.app.ledger import (
    ABANDONED,
    MAX_SPEC_BYTES,
    Conflict,
    Deployment,
    DeploymentLock,
    Holder,
    Ledger,
    LedgerError,
    LockHeld,
    LockLost,
    Session,
    ZooKeeperUnreachable,
    decode_entry,
    parse_settings,
)
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss
from kazoo.protocol.states import KazooState
from kazoo.security import make_digest_acl
from support.consul_agent import free_port
from support.waiting import wait_for

SPEC = {"image": "registry.lab:5000/web:git-abc", "replicas": 3, "env": {"MODE": "prod"}}


def holder(deployment: str, user: str = "alice", host: str = "manager-1") -> Holder:
    return Holder(deployment, host, user, "2026-12-01T13:00:00Z")


def expire(session: Session) -> None:
    """Expires the session as ZooKeeper does when its client falls silent: a twin attaches to it and closes it."""
    twin = KazooClient(hosts=session.settings.hosts, client_id=session.client.client_id)
    twin.start(timeout=10)
    twin.stop()
    twin.close()
    wait_for(lambda: session.lost, 15, what="kazoo to report the session LOST")


# -- the lock -----------------------------------------------------------------------------
def test_a_second_deployer_fails_at_once_naming_the_holder(sessions):
    first = DeploymentLock(sessions(), "web", holder("d-1", "alice", "manager-1")).acquire()
    started = time.monotonic()
    with pytest.raises(LockHeld) as refused:
        DeploymentLock(sessions(), "web", holder("d-2", "bob", "manager-2")).acquire()
    assert time.monotonic() - started < 1
    message = str(refused.value)
    assert message.startswith("app web is being deployed: its lock is held by deployment 'd-1'")
    assert "user 'alice' on host 'manager-1' since '2026-12-01T13:00:00Z'" in message
    assert refused.value.holder["deployment"] == "d-1"
    first.check()  # the refused attempt changed nothing


def test_a_waiting_deployer_gets_the_lock_when_the_holder_releases(sessions):
    first = DeploymentLock(sessions(), "web", holder("d-1")).acquire()
    threading.Timer(0.5, first.release).start()
    started = time.monotonic()
    second = DeploymentLock(sessions(), "web", holder("d-2"), lock_timeout=10).acquire()
    waited = time.monotonic() - started
    assert 0.4 < waited < 5
    second.check()
    with pytest.raises(LockLost, match="not held"):
        first.check()


def test_a_waiting_deployer_gives_up_after_lock_timeout_naming_the_holder(sessions):
    DeploymentLock(sessions(), "web", holder("d-1")).acquire()
    started = time.monotonic()
    with pytest.raises(LockHeld, match=r"after waiting 0\.5s: its lock is held by deployment 'd-1'"):
        DeploymentLock(sessions(), "web", holder("d-2"), lock_timeout=0.5).acquire()
    assert 0.5 <= time.monotonic() - started < 3


def test_a_crashed_deployers_lock_vanishes_with_its_session(sessions):
    crashed = sessions()
    DeploymentLock(crashed, "web", holder("d-1")).acquire()
    crashed.close()  # no release(): the session ends as a dead process's would
    DeploymentLock(sessions(), "web", holder("d-2")).acquire().check()


def test_locks_of_different_apps_are_independent(sessions):
    DeploymentLock(sessions(), "web", holder("d-1")).acquire()
    DeploymentLock(sessions(), "api", holder("d-2")).acquire().check()


def test_an_expired_session_stops_the_deployment_and_frees_the_lock(sessions):
    session = sessions()
    lock = DeploymentLock(session, "web", holder("d-1")).acquire()
    expire(session)
    with pytest.raises(LockLost, match="may no longer be ours, so the deployment stops: the ZooKeeper session expired"):
        lock.check()
    DeploymentLock(sessions(), "web", holder("d-2")).acquire().check()
    with pytest.raises(LockLost):
        lock.check()  # kazoo's new session does not make the lock ours again


def test_a_dropped_connection_is_waited_for_and_the_same_session_keeps_the_lock(sessions, zookeeper_private):
    # The longest session the test server grants (30 s): it outlives a restart even on a loaded machine.
    session = sessions(zookeeper_private, session_timeout=30)
    lock = DeploymentLock(session, "web", holder("d-1")).acquire()
    deployment = Ledger(session).record("web", holder("d-1"), "v1", "web:v1", SPEC)
    zookeeper_private.stop()
    wait_for(lambda: session.client.state != KazooState.CONNECTED, 10, what="kazoo to notice ZooKeeper is gone")
    comeback = threading.Timer(1.0, zookeeper_private.start)
    comeback.start()
    deployment.add_step("start new", 1.0)  # sent once ZooKeeper is back
    lock.check()  # the same session, still our node
    comeback.join()
    [entry] = Ledger(session).history("web")
    assert [step["name"] for step in entry.steps] == ["start new"]


def test_a_connection_away_past_the_session_timeout_stops_the_deployment(sessions, zookeeper_private):
    session = sessions(zookeeper_private, session_timeout=2)
    lock = DeploymentLock(session, "web", holder("d-1")).acquire()
    zookeeper_private.stop()
    started = time.monotonic()
    with pytest.raises(LockLost, match=r"the connection to ZooKeeper at 127\.0\.0\.1:[0-9]+ is suspended"):
        lock.check()
    assert 1.5 < time.monotonic() - started < 6


class AnswerLostSession(Session):
    """Fault injection on a real ZooKeeper: the first request of one kind takes effect, then its answer is lost.

    A member dying between applying a write and answering it is a moment a
    real server cannot be made to hit on cue.
    """

    def __init__(self, settings, operation: str):
        super().__init__(settings)
        self.operation_to_cut = operation

    def call(self, operation, *args, **kwargs):
        answer = super().call(operation, *args, **kwargs)
        if operation == self.operation_to_cut:
            self.operation_to_cut = None
            raise ConnectionLoss()
        return answer


def test_a_lock_whose_create_lost_its_answer_is_held_not_waited_for(zookeeper, chroot):
    with AnswerLostSession(parse_settings(zookeeper.hosts, chroot), "create") as session:
        lock = DeploymentLock(session, "web", holder("d-1")).acquire()
        lock.check()
        assert session.operation_to_cut is None


def test_a_ledger_write_whose_answer_was_lost_is_read_back_not_repeated(zookeeper, chroot):
    with AnswerLostSession(parse_settings(zookeeper.hosts, chroot), "create") as session:
        deployment = Ledger(session).record("web", holder("d-1"), "v1", "web:v1", SPEC)
        session.operation_to_cut = "set"
        deployment.add_step("start new", 1.0)  # not reported as a conflict with itself
        deployment.finish("succeeded")
        [entry] = Ledger(session).history("web")  # one entry, not two
    assert (entry.deployment, entry.outcome, [step["name"] for step in entry.steps]) == (
        "d-1",
        "succeeded",
        ["start new"],
    )


def test_a_lock_node_replaced_under_us_fails_the_check(sessions):
    session = sessions()
    lock = DeploymentLock(session, "web", holder("d-1")).acquire()
    session.client.delete(lock.path)
    DeploymentLock(sessions(), "web", holder("d-2")).acquire()
    with pytest.raises(LockLost, match="now belongs to deployment 'd-2'"):
        lock.check()


def test_the_lock_node_holds_the_holder_and_is_ephemeral(sessions, chroot):
    session = sessions()
    with DeploymentLock(session, "web", holder("d-1")) as lock:
        data, stat = session.client.get(f"{chroot}/locks/web")
        assert json.loads(data) == {
            "deployment": "d-1",
            "host": "manager-1",
            "user": "alice",
            "started": "2026-12-01T13:00:00Z",
        }
        assert stat.ephemeralOwner == session.client.client_id[0]
        assert lock.path == f"{chroot}/locks/web"
    assert session.client.exists(f"{chroot}/locks/web") is None


# -- connecting -----------------------------------------------------------------------------
def test_an_unreachable_zookeeper_is_an_error_naming_the_servers():
    ports = [free_port(), free_port()]
    hosts = f"127.0.0.1:{ports[0]},localhost:{ports[1]}"
    started = time.monotonic()
    with pytest.raises(ZooKeeperUnreachable) as refused:
        Session(parse_settings(hosts, connect_timeout=1)).open()
    assert str(refused.value) == f"no ZooKeeper server answered within 1s at {hosts}"
    assert time.monotonic() - started < 5


def test_a_zookeeper_gone_mid_deployment_fails_the_next_write_within_the_session_timeout(sessions, zookeeper_private):
    session = sessions(zookeeper_private, session_timeout=2)
    deployment = Ledger(session).record("web", holder("d-1"), "v1", "web:v1", SPEC)
    zookeeper_private.stop()
    started = time.monotonic()
    with pytest.raises(LedgerError, match=r"updating deployment d-1 of app web: ZooKeeper at 127\.0\.0\.1:[0-9]+ did"):
        deployment.add_step("start new", 1.0)
    assert time.monotonic() - started < 4


def test_a_chroot_owned_by_a_digest_identity_is_used_with_it_and_refused_without(zookeeper, chroot):
    owner = make_digest_acl("deployer", "right-password-1", all=True)
    admin = KazooClient(hosts=zookeeper.hosts, auth_data=[("digest", "deployer:right-password-1")])
    admin.start(timeout=10)
    admin.create(chroot, b"", acl=[owner])  # as the zookeeper role leaves it
    admin.stop()
    admin.close()

    with Session(parse_settings(zookeeper.hosts, chroot, username="deployer", password="right-password-1")) as session:
        DeploymentLock(session, "web", holder("d-1")).acquire().check()
        Ledger(session).record("web", holder("d-1"), "v1", "web:v1", SPEC)
        for path in (f"{chroot}/locks/web", f"{chroot}/deployments/web"):
            assert session.client.get_acls(path)[0] == [owner]

    for credentials in ({"username": "deployer", "password": "wrong-password"}, {}):
        with Session(parse_settings(zookeeper.hosts, chroot, **credentials)) as session:
            with pytest.raises(LedgerError) as refused:
                Ledger(session).history("web")
            message = str(refused.value)
            assert f"reading the history of app web: ZooKeeper at {zookeeper.hosts} refuses access under {chroot}" in (
                message
            )
            assert "wrong-password" not in message


def test_the_chroot_may_come_with_the_hosts_string(zookeeper, chroot):
    with Session(parse_settings(f"{zookeeper.hosts}{chroot}")) as session:
        DeploymentLock(session, "web", holder("d-1")).acquire()
        assert session.client.exists(f"{chroot}/locks/web") is not None


# -- the ledger -----------------------------------------------------------------------------
def test_a_deployment_is_recorded_and_updated_as_it_progresses(sessions, chroot):
    session = sessions()
    ledger = Ledger(session)
    deployment = ledger.record("web", holder("d-1"), "v1abc", SPEC["image"], SPEC)
    assert deployment.path == f"{chroot}/deployments/web/{deployment.entry.sequence}"
    with deployment.step("start new"):
        time.sleep(0.05)
    with pytest.raises(RuntimeError), deployment.step("drain old"):
        raise RuntimeError("router 2 did not answer")
    deployment.finish("failed", error="router 2 did not answer\nafter 3 tries")

    [entry] = ledger.history("web")
    assert (entry.deployment, entry.version, entry.image, entry.spec) == ("d-1", "v1abc", SPEC["image"], SPEC)
    assert (entry.user, entry.host, entry.started) == ("alice", "manager-1", "2026-12-01T13:00:00Z")
    assert entry.outcome == "failed"
    assert entry.error == "router 2 did not answer after 3 tries"
    assert entry.ended is not None
    assert [(step["name"], step["ok"]) for step in entry.steps] == [("start new", True), ("drain old", False)]
    assert entry.steps[0]["seconds"] >= 0.05
    stored = json.loads(session.client.get(deployment.path)[0])
    assert stored["outcome"] == "failed"


def test_history_is_newest_first_and_finds_the_last_success_and_by_id_or_version(sessions):
    ledger = Ledger(sessions())
    outcomes = [("d-1", "v1", "succeeded"), ("d-2", "v2", "succeeded"), ("d-3", "v3", "failed")]
    for deployment_id, version, outcome in outcomes:
        ledger.record("web", holder(deployment_id), version, "web:" + version, SPEC).finish(outcome)
    rollback = ledger.record("web", holder("d-4"), "v1", "web:v1", SPEC, rolled_back_to="d-1")

    assert [entry.deployment for entry in ledger.history("web")] == ["d-4", "d-3", "d-2", "d-1"]
    assert ledger.last_successful("web").deployment == "d-2"  # d-4 is still running
    rollback.finish("succeeded")
    assert ledger.last_successful("web").deployment == "d-4"
    assert ledger.last_successful("web").rolled_back_to == "d-1"
    assert ledger.find("web", "d-3").outcome == "failed"
    assert ledger.find("web", "v1").deployment == "d-4"  # the newest success of that version
    assert ledger.find("web", "v3") is None  # its only deployment failed
    assert ledger.find("web", "d-9") is None
    assert ledger.last_successful("api") is None
    assert ledger.history("api") == []


def test_a_failed_deployment_rolled_back_names_its_target(sessions):
    ledger = Ledger(sessions())
    ledger.record("web", holder("d-1"), "v1", "web:v1", SPEC).finish("succeeded")
    ledger.record("web", holder("d-2"), "v2", "web:v2", SPEC).finish("rolled back", "unhealthy", rolled_back_to="d-1")
    entry = ledger.find("web", "d-2")
    assert (entry.outcome, entry.error, entry.rolled_back_to) == ("rolled back", "unhealthy", "d-1")
    assert ledger.last_successful("web").deployment == "d-1"


def test_a_running_entry_left_by_a_dead_deployer_is_closed_as_failed_by_the_next(sessions):
    ledger = Ledger(sessions())
    ledger.record("web", holder("d-1"), "v1", "web:v1", SPEC)  # never finished
    ledger.record("web", holder("d-2"), "v2", "web:v2", SPEC)
    newest, abandoned = ledger.history("web")
    assert (newest.deployment, newest.outcome) == ("d-2", "running")
    assert (abandoned.outcome, abandoned.error) == ("failed", ABANDONED)


def test_pruning_keeps_the_bound_and_the_oldest_go_first(sessions):
    ledger = Ledger(sessions(), max_entries=3)
    for number in range(1, 7):
        ledger.record("web", holder(f"d-{number}"), f"v{number}", "web", SPEC).finish("succeeded")
    assert [entry.deployment for entry in ledger.history("web")] == ["d-6", "d-5", "d-4"]


def test_pruning_never_takes_the_current_success_nor_a_running_entry(sessions):
    ledger = Ledger(sessions(), max_entries=2)
    ledger.record("web", holder("d-1"), "v1", "web:v1", SPEC).finish("succeeded")
    for number in range(2, 5):
        ledger.record("web", holder(f"d-{number}"), f"v{number}", "web", SPEC).finish("failed")
    assert [entry.deployment for entry in ledger.history("web")] == ["d-4", "d-1"]

    narrow = Ledger(ledger.session, max_entries=1)
    narrow.record("web", holder("d-5"), "v5", "web:v5", SPEC)
    # One over the bound: d-1 is what runs now, d-5 is running.
    assert [(entry.deployment, entry.outcome) for entry in narrow.history("web")] == [
        ("d-5", "running"),
        ("d-1", "succeeded"),
    ]


def test_concurrent_updates_of_one_entry_conflict(sessions):
    ledger = Ledger(sessions())
    mine = ledger.record("web", holder("d-1"), "v1", "web:v1", SPEC)
    other_session = sessions()
    data, stat = other_session.client.get(mine.path)
    theirs = Deployment(other_session, decode_entry("web", mine.entry.sequence, data), stat.version)
    theirs.add_step("start new", 1.5)
    with pytest.raises(Conflict, match=r"updating deployment d-1 of app web: its ledger entry .* was changed"):
        mine.finish("succeeded")
    [stored] = ledger.history("web")
    assert (stored.outcome, len(stored.steps)) == ("running", 1)


def test_an_oversized_spec_is_refused_before_anything_is_written(sessions):
    ledger = Ledger(sessions())
    huge = {"env": {"BLOB": "x" * MAX_SPEC_BYTES}}
    with pytest.raises(LedgerError, match=f"spec of app web: [0-9]+ bytes of JSON, more than .* {MAX_SPEC_BYTES}"):
        ledger.record("web", holder("d-1"), "v1", "web:v1", huge)
    assert ledger.history("web") == []
    assert ledger.apps() == []


def test_apps_lists_every_app_with_a_ledger(sessions):
    ledger = Ledger(sessions())
    for app in ("web", "api", "worker.eu"):
        ledger.record(app, holder("d-1"), "v1", "img", SPEC)
    assert ledger.apps() == ["api", "web", "worker.eu"]


def test_an_unreadable_entry_is_an_error_naming_it(sessions, chroot):
    session = sessions()
    session.client.create(f"{chroot}/deployments/web/", b"{not json", sequence=True, makepath=True)
    with pytest.raises(LedgerError, match=r"ledger entry web/0000000000: not JSON"):
        Ledger(session).history("web")
