"""The loop's decisions against fakes of Consul and Docker (no threads: events and resyncs are driven directly)."""

import json
import logging
import math
from pathlib import Path

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul import ConsulError
from ansible_collections.dockyard.platform.plugins.module_utils.registrator import config, handover, registrator
from ansible_collections.dockyard.platform.plugins.module_utils.registrator.docker_source import DockerError

PREFIX = "dockyard/instances/"


class FakeConsul:
    def __init__(self):
        self.kv = {}  # key -> (value, session)
        self.down = False
        self.denied = set()
        self.recursed = []
        self.sessions = []  # session/list entries
        self.destroyed = []

    def session_list(self):
        self._check()
        return list(self.sessions)

    def session_create(self, name, ttl):
        self._check()
        session = f"new-{len(self.sessions)}"
        self.sessions.append({"ID": session, "Name": name})
        return session

    def session_renew(self, session):
        self._check()
        return any(entry["ID"] == session for entry in self.sessions)

    def session_destroy(self, session, timeout=None):
        self._check()
        self.destroyed.append(session)
        self.sessions = [entry for entry in self.sessions if entry["ID"] != session]
        # Behavior delete: the keys it holds go with it.
        self.kv = {key: entry for key, entry in self.kv.items() if entry[1] != session}

    def _check(self, key=None):
        if self.down:
            raise ConsulError("consul at http://x unreachable: refused")
        if key in self.denied:
            raise ConsulError(f"consul answered 403 to PUT /v1/kv/{key}: Permission denied", 403)

    def kv_acquire(self, key, value, session):
        self._check(key)
        holder = self.kv.get(key, (None, None))[1]
        if holder not in (None, session):
            return False
        self.kv[key] = (value, session)
        return True

    def kv_delete(self, key):
        self._check()
        self.kv.pop(key, None)

    def kv_recurse(self, prefix):
        self._check()
        self.recursed.append(prefix)
        return {key: entry for key, entry in self.kv.items() if key.startswith(prefix)}

    def doc(self, key):
        return json.loads(self.kv[key][0])


class FakeDocker:
    def __init__(self):
        self.containers = {}
        self.killed = []  # (container ID, signal) sent through kill()
        self.down = False

    def add(self, cid, port="8080", health=None, **labels):
        """A Swarm task's container (task ID = container ID unless given); a label set to None is left out."""
        labels = {
            "org.dockyard.app": "web",
            "org.dockyard.port": port,
            "com.docker.swarm.service.id": "svc1",
            "com.docker.swarm.task.id": cid,
            **labels,
        }
        labels = {key: value for key, value in labels.items() if value is not None}
        state = {"Running": True, **({"Health": {"Status": health}} if health else {})}
        self.containers[cid] = {
            "Id": cid,
            "Name": f"/{cid}",
            "State": state,
            "Config": {"Labels": labels},
            "NetworkSettings": {"Ports": {"8080/tcp": [{"HostPort": "3" + cid[-4:]}]}},
        }
        return labels

    def running(self):
        return [attrs for attrs in self.containers.values() if attrs["State"]["Running"]]

    def inspect(self, cid):
        return self.containers.get(cid)

    def kill(self, cid, signal):
        if self.down:
            raise DockerError("docker engine at unix:///x: kill failed: refused")
        if cid not in self.containers or not self.containers[cid]["State"]["Running"]:
            return False
        self.killed.append((cid, signal))
        return True


class Clock:
    """The wall clock the registrator reads drain deadlines from, moved by the test."""

    def __init__(self, now=1_764_590_000.0):
        self.now = now

    def __call__(self):
        return self.now


def event(action, cid, labels, **attributes):
    return {
        "Type": "container",
        "Action": action,
        "id": cid,
        "Actor": {"ID": cid, "Attributes": {**labels, **attributes}},
    }


@pytest.fixture
def clock():
    return Clock()


class Prober:
    """The readiness probe: answers as the test sets it (per container port), and records where it was sent."""

    def __init__(self):
        self.passing = set()  # host ports whose app answers as its check expects
        self.sent = []  # (address, port, path, host)

    def __call__(self, address, port, check):
        self.sent.append((address, port, check.path, check.host))
        if port in self.passing:
            return True, f"status {check.expect_status}"
        return False, f"status 503, expected {check.expect_status}"


def probe_round(daemon):
    """Starts the due probes and hands their answers to the loop, as run() does."""
    for _probe in range(daemon.start_due_probes()):
        kind, payload = daemon.queue.get(timeout=5)
        assert kind == "probe"
        daemon.probe_answered(*payload)


@pytest.fixture
def prober():
    return Prober()


@pytest.fixture
def world(tmp_path, clock, prober):
    consul, docker = FakeConsul(), FakeDocker()
    settings = config.parse({"node": "n1", "address": "10.0.0.5", "state_dir": str(tmp_path / "state")})
    daemon = registrator.Registrator(
        settings, client=consul, docker_source=docker, event_source=docker, clock=clock, probe=prober
    )
    daemon.session = "s1"
    return daemon, consul, docker


def test_resync_writes_what_runs_and_deletes_what_this_node_owns_but_nothing_runs_for(world):
    daemon, consul, docker = world
    docker.add("c0001")
    docker.add("c0002", **{"com.docker.swarm.task.id": "task2", "org.dockyard.track": "canary"})
    docker.add("c0003", port="nope")  # skipped
    consul.kv[PREFIX + "n1/web/gone"] = (b"{}", "old")
    consul.kv[PREFIX + "n2/web/theirs"] = (b"{}", "s9")
    consul.kv[PREFIX + "web/n1/old-layout"] = (b"{}", "s9")  # outside this node's prefix: not read, not touched
    assert daemon.resync()
    assert sorted(consul.kv) == [
        PREFIX + "n1/web/c0001",
        PREFIX + "n1/web/task2",
        PREFIX + "n2/web/theirs",
        PREFIX + "web/n1/old-layout",
    ]
    assert consul.recursed == [PREFIX + "n1/"]
    assert consul.doc(PREFIX + "n1/web/task2") == {"addr": "10.0.0.5", "port": 30002, "version": "", "track": "canary"}
    assert consul.kv[PREFIX + "n1/web/c0001"][1] == "s1"
    assert daemon.registered == {"c0001": PREFIX + "n1/web/c0001", "c0002": PREFIX + "n1/web/task2"}


def test_kill_withdraws_at_once_but_not_for_a_control_signal(world):
    daemon, consul, docker = world
    labels = docker.add("c0001")
    daemon.handle_event(event("start", "c0001", labels))
    key = PREFIX + "n1/web/c0001"
    assert key in consul.kv
    daemon.handle_event(event("kill", "c0001", labels, signal="1"))  # SIGHUP: a reload
    assert key in consul.kv
    daemon.handle_event(event("kill", "c0001", labels, signal="15"))
    assert key not in consul.kv
    daemon.resync()  # still running during its grace period: not registered again
    assert key not in consul.kv
    daemon.handle_event(event("die", "c0001", labels))
    daemon.handle_event(event("start", "c0001", labels))
    assert key in consul.kv


def test_health_status_gates_registration(world):
    daemon, consul, docker = world
    labels = docker.add("c0001", health="starting")
    key = PREFIX + "n1/web/c0001"
    daemon.handle_event(event("start", "c0001", labels))
    daemon.resync()
    assert key not in consul.kv
    docker.containers["c0001"]["State"]["Health"]["Status"] = "healthy"
    daemon.handle_event(event("health_status: healthy", "c0001", labels))
    assert key in consul.kv
    docker.containers["c0001"]["State"]["Health"]["Status"] = "unhealthy"
    daemon.handle_event(event("health_status: unhealthy", "c0001", labels))
    assert key not in consul.kv


def test_a_failed_write_brings_the_resync_forward_and_the_resync_catches_up(world):
    daemon, consul, docker = world
    daemon.resync_due = math.inf
    consul.down = True
    daemon.handle_event(event("start", "c0001", docker.add("c0001")))
    assert daemon.resync_due < math.inf
    assert not daemon.resync()
    consul.down = False
    assert daemon.resync()
    assert PREFIX + "n1/web/c0001" in consul.kv


def test_a_denied_key_is_logged_and_the_others_are_written(world, caplog):
    daemon, consul, docker = world
    docker.add("c0001")
    docker.add("c0002")
    consul.denied.add(PREFIX + "n1/web/c0001")
    assert daemon.resync()
    assert list(consul.kv) == [PREFIX + "n1/web/c0002"]
    denied = [record for record in caplog.records if record.getMessage() == "cannot write instance"]
    assert len(denied) == 1
    assert denied[0].fields["key"] == PREFIX + "n1/web/c0001"
    assert "403" in str(denied[0].fields["error"])


def test_a_key_held_by_another_session_is_left_alone(world):
    daemon, consul, docker = world
    docker.add("c0001")
    consul.kv[PREFIX + "n1/web/c0001"] = (b"{}", "someone-else")
    assert daemon.resync()
    assert consul.kv[PREFIX + "n1/web/c0001"] == (b"{}", "someone-else")


def test_without_a_session_nothing_is_written(world):
    daemon, consul, docker = world
    daemon.session = None
    daemon.handle_event(event("start", "c0001", docker.add("c0001")))
    assert not daemon.resync()
    assert consul.kv == {}


def test_a_plain_docker_run_with_the_app_label_is_skipped_and_logged_once(world, caplog):
    daemon, consul, docker = world
    labels = docker.add("c0001", **{"com.docker.swarm.service.id": None, "com.docker.swarm.task.id": None})
    daemon.handle_event(event("start", "c0001", labels))
    assert daemon.resync()
    assert daemon.resync()
    assert consul.kv == {}
    skipped = [record for record in caplog.records if record.getMessage() == "container skipped"]
    assert [record.levelname for record in skipped if record.levelname != "DEBUG"] == ["ERROR"]
    assert "not a Swarm service's task" in str(skipped[0].fields["reason"])
    assert "container c0001" in str(skipped[0].fields["reason"])


def test_a_task_without_its_service_label_is_skipped(world):
    daemon, consul, docker = world
    docker.add("c0001", **{"com.docker.swarm.service.id": None})
    assert daemon.resync()
    assert consul.kv == {}


@pytest.mark.parametrize(
    ("labels", "field"),
    [
        ({"org.dockyard.version": "1.0\nserver evil 10.9.9.9:80"}, "version"),
        ({"org.dockyard.version": "x" * 300}, "version"),
        ({"com.docker.swarm.task.id": "t" * 200}, "task"),
    ],
)
def test_an_instance_the_routers_would_refuse_is_refused_at_the_source(world, caplog, labels, field):
    daemon, consul, docker = world
    docker.add("c0001", **labels)
    docker.add("c0002")
    assert daemon.resync()
    assert list(consul.kv) == [PREFIX + "n1/web/c0002"]
    skipped = [record for record in caplog.records if record.getMessage() == "container skipped"]
    reason = str(skipped[0].fields["reason"])
    assert reason.startswith("container c0001: the routers would refuse its instance")
    assert f"{field}:" in reason


def test_the_write_itself_goes_through_the_routers_gate(world, caplog):
    """Even an Instance built elsewhere (not by instance_from) is checked before it is written."""
    daemon, consul, _docker = world
    bad = registrator.routing.Instance("web", "n1", "t1", "0.0.0.0", 80)
    assert daemon._put("c0001", bad) == "refused"
    assert consul.kv == {}
    refused = [record for record in caplog.records if record.getMessage() == "instance refused, not written"]
    assert refused[0].fields["container"] == "c0001"
    assert "addr" in str(refused[0].fields["error"])


def test_an_earlier_runs_sessions_go_with_their_keys_in_either_layout(world):
    """The upgrade path: the old run's session (this node's name) is destroyed, and Consul deletes what it held."""
    daemon, consul, _docker = world
    consul.sessions = [
        {"ID": "old", "Name": "dockyard-registrator n1"},
        {"ID": "s1", "Name": "dockyard-registrator n1"},
        {"ID": "other", "Name": "dockyard-registrator n2"},
    ]
    consul.kv[PREFIX + "web/n1/t-old-layout"] = (b"{}", "old")
    consul.kv[PREFIX + "n1/web/t-new-layout"] = (b"{}", "old")
    consul.kv[PREFIX + "n2/web/t-theirs"] = (b"{}", "other")
    assert daemon._replace_predecessors("s1")
    assert consul.destroyed == ["old"]
    assert list(consul.kv) == [PREFIX + "n2/web/t-theirs"]


def test_replacing_predecessors_is_retried_when_consul_cannot_list_sessions(world):
    daemon, consul, _docker = world
    consul.down = True
    assert not daemon._replace_predecessors("s1")


# -- a restart hands the session over ----------------------------------------------------------------------------------
SESSION = "0b6cbd8e-5a5e-4f0e-9d0e-6f1f2a3b4c5d"


def test_a_stop_while_systemd_restarts_the_unit_hands_the_session_over_and_keeps_the_instances(world, caplog):
    daemon, consul, docker = world
    consul.sessions = [{"ID": SESSION, "Name": "dockyard-registrator n1"}]
    daemon.session = SESSION
    docker.add("c0001")
    assert daemon.resync()
    daemon.restart_pending = lambda: True
    with caplog.at_level(logging.INFO):
        daemon._shutdown()
    assert consul.destroyed == [] and list(consul.kv) == [PREFIX + "n1/web/c0001"]
    assert "session handed over to the next run" in caplog.text
    stored = Path(daemon.handover_store.path)
    assert stored.stat().st_mode & 0o777 == 0o600
    assert json.loads(stored.read_text()) == {
        "session": SESSION,
        "name": "dockyard-registrator n1",
        "kv_prefix": "dockyard/",
    }


def test_a_plain_stop_destroys_the_session_and_leaves_no_handover(world):
    daemon, consul, docker = world
    consul.sessions = [{"ID": SESSION, "Name": "dockyard-registrator n1"}]
    daemon.session = SESSION
    docker.add("c0001")
    assert daemon.resync()
    daemon.restart_pending = lambda: False
    daemon._shutdown()
    assert consul.destroyed == [SESSION] and consul.kv == {}
    assert not Path(daemon.handover_store.path).exists()


def test_the_next_run_takes_the_handed_over_session_and_creates_none(world, tmp_path):
    daemon, consul, _docker = world
    consul.sessions = [{"ID": SESSION, "Name": "dockyard-registrator n1"}]
    daemon.handover_store.save(SESSION, "dockyard-registrator n1", "dockyard/")
    daemon._read_offer()
    assert not Path(daemon.handover_store.path).exists(), "a handover is taken once"
    assert daemon._take_over() == SESSION
    assert [entry["ID"] for entry in consul.sessions] == [SESSION]


def test_a_handed_over_session_that_ended_gives_way_to_a_new_one(world):
    daemon, _consul, _docker = world
    daemon.handover_store.save(SESSION, "dockyard-registrator n1", "dockyard/")
    daemon._read_offer()
    assert daemon._take_over() is None


def test_an_offer_survives_consul_being_down_until_the_keeper_can_ask(world):
    daemon, consul, _docker = world
    consul.sessions = [{"ID": SESSION, "Name": "dockyard-registrator n1"}]
    daemon.handover_store.save(SESSION, "dockyard-registrator n1", "dockyard/")
    daemon._read_offer()
    consul.down = True
    with pytest.raises(ConsulError):
        daemon._take_over()
    consul.down = False
    assert daemon._take_over() == SESSION


@pytest.mark.parametrize(
    ("name", "kv_prefix"), [("dockyard-registrator n2", "dockyard/"), ("dockyard-registrator n1", "other/")]
)
def test_a_handover_for_another_node_or_prefix_is_not_taken(world, name, kv_prefix):
    daemon, _consul, _docker = world
    daemon.handover_store.save(SESSION, name, kv_prefix)
    daemon._read_offer()
    assert daemon._take_over() is None
    assert not Path(daemon.handover_store.path).exists()


@pytest.mark.parametrize(
    "text",
    ["{", "[]", '{"session": "x", "name": "dockyard-registrator n1", "kv_prefix": "dockyard/"}', '{"session": 1}'],
)
def test_a_broken_handover_file_is_reported_ignored_and_removed(world, caplog, text):
    daemon, _consul, _docker = world
    path = Path(daemon.handover_store.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    with caplog.at_level(logging.WARNING):
        daemon._read_offer()
    assert daemon._take_over() is None
    ignored = [record for record in caplog.records if record.getMessage() == "session handover ignored"]
    assert len(ignored) == 1 and str(path) in str(ignored[0].fields["error"])
    assert not path.exists()


@pytest.mark.parametrize(
    ("cgroup", "unit"),
    [
        ("0::/system.slice/dockyard-registrator.service\n", "dockyard-registrator.service"),
        ("12:pids:/system.slice/x.service\n0::/system.slice/x.service\n", "x.service"),
        ("0::/user.slice/user-0.slice/session-3.scope\n", None),
        ("0::/\n", None),
        ("", None),
    ],
)
def test_the_unit_is_read_from_the_cgroup(cgroup, unit):
    assert handover.unit_of(cgroup) == unit


def test_only_a_restart_job_of_this_very_unit_counts():
    jobs = "109 dockyard-registrator.service restart running\n110 dockyard-renderer.service stop waiting\n"
    assert handover.job_of(jobs, "dockyard-registrator.service") == "restart"
    assert handover.job_of(jobs, "dockyard-renderer.service") == "stop"
    assert handover.job_of(jobs, "registrator.service") is None
    assert handover.job_of("", "dockyard-registrator.service") is None


def test_outside_systemd_no_restart_is_pending(monkeypatch, tmp_path):
    cgroup = tmp_path / "cgroup"
    cgroup.write_text("0::/user.slice/user-0.slice/session-3.scope\n")
    monkeypatch.setattr(handover, "CGROUP_FILE", str(cgroup))
    assert handover.restart_pending() is False
    monkeypatch.setattr(handover, "CGROUP_FILE", str(tmp_path / "missing"))
    assert handover.restart_pending() is False


# -- drain on stop ---------------------------------------------------------------------------------------------------
DRAINED = {"org.dockyard.drain_timeout": "30s", "org.dockyard.stop_signal": "QUIT"}


def started(daemon, docker, cid="c0001", **labels):
    labels = docker.add(cid, **labels)
    daemon.handle_event(event("start", cid, labels))
    return labels


def test_a_sigurg_stop_withdraws_at_once_keeps_out_then_sends_the_real_signal(world, clock):
    daemon, consul, docker = world
    labels = started(daemon, docker, **DRAINED)
    key = PREFIX + "n1/web/c0001"
    assert key in consul.kv
    daemon.handle_event(event("kill", "c0001", labels, signal="23", name="web.1.x"))
    assert key not in consul.kv
    # Still running and healthy during the window: neither a resync nor a health event brings it back.
    assert daemon.resync()
    daemon.handle_event(event("health_status: healthy", "c0001", labels))
    assert key not in consul.kv
    clock.now += 29.9
    daemon.send_due_signals()
    assert docker.killed == []
    clock.now += 0.1
    daemon.send_due_signals()
    assert docker.killed == [("c0001", "SIGQUIT")]
    daemon.send_due_signals()
    assert docker.killed == [("c0001", "SIGQUIT")], "one signal per drain"
    assert daemon.drain_store.load() == []


def test_a_second_stop_during_the_window_keeps_the_first_deadline(world, clock):
    daemon, _consul, docker = world
    labels = started(daemon, docker, **DRAINED)
    daemon.handle_event(event("kill", "c0001", labels, signal="23"))
    clock.now += 20
    daemon.handle_event(event("kill", "c0001", labels, signal="23"))
    clock.now += 10
    daemon.send_due_signals()
    assert docker.killed == [("c0001", "SIGQUIT")]


def test_a_sigurg_kill_without_the_drain_label_is_a_control_signal(world):
    daemon, consul, docker = world
    labels = started(daemon, docker, **{"org.dockyard.stop_signal": "SIGTERM"})
    daemon.handle_event(event("kill", "c0001", labels, signal="23"))
    assert PREFIX + "n1/web/c0001" in consul.kv
    assert len(daemon.drains) == 0


def test_a_bad_drain_label_withdraws_and_stops_at_once_naming_the_label(world, caplog):
    daemon, consul, docker = world
    labels = started(daemon, docker, **{"org.dockyard.drain_timeout": "ages", "org.dockyard.stop_signal": "QUIT"})
    daemon.handle_event(event("kill", "c0001", labels, signal="23", name="web.1.x"))
    assert consul.kv == {}
    daemon.send_due_signals()
    assert docker.killed == [("c0001", "SIGQUIT")]
    refused = [record for record in caplog.records if record.getMessage().startswith("drain label refused")]
    assert [record.levelname for record in refused] == ["ERROR"]
    assert refused[0].fields["container"] == "web.1.x"
    assert "label org.dockyard.drain_timeout: expected a duration" in refused[0].fields["error"]


def test_a_container_that_dies_or_goes_during_its_window_gets_no_signal(world, clock, caplog):
    caplog.set_level(logging.INFO, logger="dockyard")
    daemon, _consul, docker = world
    first = started(daemon, docker, "c0001", **DRAINED)
    second = started(daemon, docker, "c0002", **DRAINED)
    daemon.handle_event(event("kill", "c0001", first, signal="23"))
    daemon.handle_event(event("kill", "c0002", second, signal="23"))
    daemon.handle_event(event("die", "c0001", first))  # Docker's SIGKILL, or the app exiting by itself
    del docker.containers["c0002"]  # removed while the event stream was away: the resync notices
    assert daemon.resync()
    assert len(daemon.drains) == 0
    clock.now += 60
    daemon.send_due_signals()
    assert docker.killed == []
    ended = [record.getMessage() for record in caplog.records if record.getMessage().startswith("drain ended")]
    assert ended == ["drain ended: the container stopped before its window", "drain ended: the container is gone"]


def test_a_container_gone_at_the_deadline_is_logged_and_forgotten(world, clock, caplog):
    caplog.set_level(logging.INFO, logger="dockyard")
    daemon, _consul, docker = world
    labels = started(daemon, docker, **DRAINED)
    daemon.handle_event(event("kill", "c0001", labels, signal="23"))
    docker.containers["c0001"]["State"]["Running"] = False
    clock.now += 30
    daemon.send_due_signals()
    assert len(daemon.drains) == 0
    assert "drain ended: the container is gone" in [record.getMessage() for record in caplog.records]


def test_the_signal_is_retried_while_the_engine_does_not_answer(world, clock):
    daemon, _consul, docker = world
    labels = started(daemon, docker, **DRAINED)
    daemon.handle_event(event("kill", "c0001", labels, signal="23"))
    docker.down = True
    clock.now += 30
    daemon.send_due_signals()
    assert "c0001" in daemon.drains
    assert clock.now < daemon.drains.next_due() <= clock.now + daemon.config.backoff
    docker.down = False
    clock.now += daemon.config.backoff
    daemon.send_due_signals()
    assert docker.killed == [("c0001", "SIGQUIT")]


def test_a_restarted_registrator_keeps_a_draining_task_out_and_still_signals_it(world, clock):
    daemon, consul, docker = world
    container = "f" * 59 + "c0001"  # a full ID, as the engine gives and the drains file takes
    labels = started(daemon, docker, container, **DRAINED)
    daemon.handle_event(event("kill", container, labels, signal="23", name="web.1.x"))
    clock.now += 10

    again = registrator.Registrator(
        daemon.config, client=consul, docker_source=docker, event_source=docker, clock=clock
    )
    again.session = "s2"
    again._resume_drains()
    assert again.resync()
    assert consul.kv == {}, "the task was told to stop: it is not registered again"
    clock.now += 19.9
    again.send_due_signals()
    assert docker.killed == []
    clock.now += 0.1
    again.send_due_signals()
    assert docker.killed == [(container, "SIGQUIT")]


def test_an_unreadable_drains_file_is_reported_and_ignored(world, caplog, tmp_path):
    daemon, _consul, _docker = world
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "drains.json").write_text("not json")
    daemon._resume_drains()
    assert len(daemon.drains) == 0
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert errors[0].getMessage() == "cannot read the drains of an earlier run, ignored"
    assert "drains.json: cannot read it" in str(errors[0].fields["error"])


# -- readiness before traffic -----------------------------------------------------------
CHECKED = {
    "org.dockyard.http_check": '{"expect_status":200,"host":"web.example.com","interval_ms":1000,'
    '"path":"/ready","timeout_ms":500}'
}


def test_a_checked_container_is_registered_only_once_a_probe_of_its_instance_passes(world, prober, caplog):
    daemon, consul, docker = world
    labels = docker.add("c0001", **CHECKED)
    key = PREFIX + "n1/web/c0001"
    caplog.set_level(logging.DEBUG, logger="dockyard")
    daemon.handle_event(event("start", "c0001", labels))
    assert key not in consul.kv and "c0001" in daemon.waiting
    probe_round(daemon)
    assert prober.sent == [("10.0.0.5", 30001, "/ready", "web.example.com")], "sent where the routers would send"
    assert key not in consul.kv
    failed = [record for record in caplog.records if record.getMessage() == "not ready yet"]
    assert len(failed) == 1 and failed[0].levelno == logging.DEBUG and failed[0].fields["seen"].startswith("status 503")
    probe_round(daemon)
    assert len(prober.sent) == 1, "the next probe waits an interval"
    daemon.resync()
    assert key not in consul.kv, "a resync does not register a container that has not passed"
    prober.passing.add(30001)
    daemon.waiting.get("c0001").due = 0  # its interval has passed
    probe_round(daemon)
    assert consul.doc(key) == {"addr": "10.0.0.5", "port": 30001, "version": "", "track": "stable"}
    assert "c0001" not in daemon.waiting
    ready = [record for record in caplog.records if record.getMessage() == "ready"]
    assert len(ready) == 1 and ready[0].levelno == logging.INFO and ready[0].fields["probes"] == 2


def registered_once_ready(daemon, docker, prober):
    """A checked container started, passing its first probe: (its labels, its key)."""
    labels = docker.add("c0001", **CHECKED)
    prober.passing.add(30001)
    daemon.handle_event(event("start", "c0001", labels))
    probe_round(daemon)
    return labels, PREFIX + "n1/web/c0001"


def test_a_registered_container_is_not_probed_again(world, prober):
    daemon, consul, docker = world
    labels, key = registered_once_ready(daemon, docker, prober)
    assert key in consul.kv and len(prober.sent) == 1
    consul.kv.clear()  # the session was invalidated: Consul deleted its keys
    daemon.resync()
    assert key in consul.kv
    daemon.handle_event(event("health_status: healthy", "c0001", labels))
    daemon.resync()
    assert daemon.start_due_probes() == 0 and len(prober.sent) == 1


def test_a_resync_puts_a_checked_container_on_the_wait_list_rather_than_in_consul(world, prober):
    daemon, consul, docker = world
    docker.add("c0001", **CHECKED)
    docker.add("c0002")
    daemon.resync()
    assert sorted(consul.kv) == [PREFIX + "n1/web/c0002"]
    prober.passing.add(30001)
    probe_round(daemon)
    assert PREFIX + "n1/web/c0001" in consul.kv


def test_a_restarted_registrator_keeps_a_checked_instance_its_predecessor_registered(world, prober):
    daemon, consul, docker = world
    _labels, key = registered_once_ready(daemon, docker, prober)
    assert key in consul.kv

    again = registrator.Registrator(daemon.config, client=consul, docker_source=docker, event_source=docker)
    again.session = "s1"
    prober.passing.clear()  # were it probed now, it would not pass: it must not be asked
    assert again.resync()
    assert key in consul.kv, "a restart takes no serving instance out of the routers"
    assert "c0001" not in again.waiting and again.start_due_probes() == 0


@pytest.mark.parametrize("action", ["kill", "stop", "die"])
def test_a_stop_cancels_the_probing_and_a_late_answer_registers_nothing(world, prober, action):
    daemon, consul, docker = world
    labels = docker.add("c0001", **CHECKED)
    daemon.handle_event(event("start", "c0001", labels))
    prober.passing.add(30001)
    daemon.start_due_probes()
    _kind, answer = daemon.queue.get(timeout=5)  # the probe ran while the container was told to stop
    daemon.handle_event(event(action, "c0001", labels, signal="15"))
    assert "c0001" not in daemon.waiting
    daemon.probe_answered(*answer)
    assert consul.kv == {}
    if action == "die":
        daemon.handle_event(event("start", "c0001", labels))  # restarted: a new probe decides
        assert "c0001" in daemon.waiting


def test_a_container_gone_while_waiting_is_no_longer_probed(world):
    daemon, _consul, docker = world
    docker.add("c0001", **CHECKED)
    daemon.resync()
    assert "c0001" in daemon.waiting
    del docker.containers["c0001"]  # its die event fell while the stream was away
    daemon.resync()
    assert "c0001" not in daemon.waiting and daemon.start_due_probes() == 0


@pytest.mark.parametrize(
    "raw", ["{", '{"path":"/ready"}', CHECKED["org.dockyard.http_check"].replace("/ready", "/a b")]
)
def test_a_bad_check_label_skips_the_container_naming_it_and_probes_nothing(world, prober, caplog, raw):
    daemon, consul, docker = world
    docker.add("c0001", **{"org.dockyard.http_check": raw})
    daemon.resync()
    daemon.resync()
    assert consul.kv == {} and "c0001" not in daemon.waiting and prober.sent == []
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].getMessage() == "container skipped"
    assert str(errors[0].fields["reason"]).startswith("container c0001: label org.dockyard.http_check: ")


def test_a_probe_that_raises_counts_as_failed(world, prober):
    daemon, consul, docker = world
    labels = docker.add("c0001", **CHECKED)

    def broken(*_args):
        raise RuntimeError("boom")

    daemon.probe = broken
    daemon.handle_event(event("start", "c0001", labels))
    probe_round(daemon)
    entry = daemon.waiting.get("c0001")
    assert entry.probes == 1 and entry.due < math.inf and consul.kv == {}
