"""The loop's decisions against fakes of Consul and Docker (no threads: events and resyncs are driven directly)."""

import json
import math

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul import ConsulError
from ansible_collections.dockyard.platform.plugins.module_utils.registrator import config, registrator

PREFIX = "dockyard/instances/"


class FakeConsul:
    def __init__(self):
        self.kv = {}  # key -> (value, session)
        self.down = False
        self.denied = set()

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
        return {key: entry for key, entry in self.kv.items() if key.startswith(prefix)}

    def doc(self, key):
        return json.loads(self.kv[key][0])


class FakeDocker:
    def __init__(self):
        self.containers = {}

    def add(self, cid, port="8080", health=None, **labels):
        labels = {"org.dockyard.app": "web", "org.dockyard.port": port, **labels}
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


def event(action, cid, labels, **attributes):
    return {
        "Type": "container",
        "Action": action,
        "id": cid,
        "Actor": {"ID": cid, "Attributes": {**labels, **attributes}},
    }


@pytest.fixture
def world():
    consul, docker = FakeConsul(), FakeDocker()
    settings = config.parse({"node": "n1", "address": "10.0.0.5"})
    daemon = registrator.Registrator(settings, client=consul, docker_source=docker, event_source=docker)
    daemon.session = "s1"
    return daemon, consul, docker


def test_resync_writes_what_runs_and_deletes_what_this_node_owns_but_nothing_runs_for(world):
    daemon, consul, docker = world
    docker.add("c0001")
    docker.add("c0002", **{"com.docker.swarm.task.id": "task2", "org.dockyard.track": "canary"})
    docker.add("c0003", port="nope")  # skipped
    consul.kv[PREFIX + "web/n1/gone"] = (b"{}", "old")
    consul.kv[PREFIX + "web/n2/theirs"] = (b"{}", "s9")
    assert daemon.resync()
    assert sorted(consul.kv) == [PREFIX + "web/n1/c0001", PREFIX + "web/n1/task2", PREFIX + "web/n2/theirs"]
    assert consul.doc(PREFIX + "web/n1/task2") == {"addr": "10.0.0.5", "port": 30002, "version": "", "track": "canary"}
    assert consul.kv[PREFIX + "web/n1/c0001"][1] == "s1"
    assert daemon.registered == {"c0001": PREFIX + "web/n1/c0001", "c0002": PREFIX + "web/n1/task2"}


def test_kill_withdraws_at_once_but_not_for_a_control_signal(world):
    daemon, consul, docker = world
    labels = docker.add("c0001")
    daemon.handle_event(event("start", "c0001", labels))
    key = PREFIX + "web/n1/c0001"
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
    key = PREFIX + "web/n1/c0001"
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
    assert PREFIX + "web/n1/c0001" in consul.kv


def test_a_denied_key_is_logged_and_the_others_are_written(world, caplog):
    daemon, consul, docker = world
    docker.add("c0001")
    docker.add("c0002")
    consul.denied.add(PREFIX + "web/n1/c0001")
    assert daemon.resync()
    assert list(consul.kv) == [PREFIX + "web/n1/c0002"]
    denied = [record for record in caplog.records if record.getMessage() == "cannot write instance"]
    assert len(denied) == 1
    assert denied[0].fields["key"] == PREFIX + "web/n1/c0001"
    assert "403" in str(denied[0].fields["error"])


def test_a_key_held_by_another_session_is_left_alone(world):
    daemon, consul, docker = world
    docker.add("c0001")
    consul.kv[PREFIX + "web/n1/c0001"] = (b"{}", "someone-else")
    assert daemon.resync()
    assert consul.kv[PREFIX + "web/n1/c0001"] == (b"{}", "someone-else")


def test_without_a_session_nothing_is_written(world):
    daemon, consul, docker = world
    daemon.session = None
    daemon.handle_event(event("start", "c0001", docker.add("c0001")))
    assert not daemon.resync()
    assert consul.kv == {}
