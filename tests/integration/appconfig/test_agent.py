"""Must show: the node agent renders an app's config from a real Consul with ACLs, with the app's own token;
the files link appears only once every template rendered; a key change re-renders within 5 s; the status
key says rendered and key_index; a broken template (syntax error, or a read the app token may not make)
keeps the last good file and shows in the status; a deleted definition takes its status and directory
with it; a change signals the service's running containers (real Docker when an engine answers); the
restart path's lock, one-at-a-time order and wait for the replacement work against real Consul.
"""

import contextlib
import json
import os
import stat
import threading
import time
import uuid

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.appconfig import agent as agent_module
from ansible_collections.dockyard.platform.plugins.module_utils.appconfig import layout, restart
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul import ConsulClient
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.routing import instance_key
from ansible_collections.dockyard.platform.plugins.module_utils.registrator import config as registrator_config
from ansible_collections.dockyard.platform.plugins.module_utils.registrator.docker_source import DockerSource
from support.waiting import wait_for


def make_token(agent, rules: dict) -> str:
    name = f"appconfig-test-{uuid.uuid4().hex[:8]}"
    agent.request("PUT", "/v1/acl/policy", json.dumps({"Name": name, "Rules": json.dumps(rules)}).encode())
    token, _headers = agent.request("PUT", "/v1/acl/token", json.dumps({"Policies": [{"Name": name}]}).encode())
    return token["SecretID"]


class MockContainers:
    """Stands in for NodeContainers where no Swarm runs: the service's containers, the signals and stops sent."""

    def __init__(self):
        self.by_service = {}
        self.signals = []
        self.stops = []

    def of_service(self, service, running=True):
        return list(self.by_service.get(service, []))

    def signal(self, container_id, signal):
        self.signals.append((container_id, signal))
        return True

    def stop(self, container_id):
        self.stops.append(container_id)
        for summaries in self.by_service.values():
            summaries[:] = [summary for summary in summaries if summary["Id"] != container_id]


@pytest.fixture
def setup(consul_acl_agent, tmp_path):
    tag = uuid.uuid4().hex[:8]
    prefix = f"test-{tag}/"
    config_prefix = f"config/qa/shop-{tag}/"
    app_token = make_token(consul_acl_agent, {"key_prefix": {config_prefix: {"policy": "read"}}})
    platform_token = make_token(
        consul_acl_agent, {"key_prefix": {prefix: {"policy": "write"}}, "session_prefix": {"": {"policy": "write"}}}
    )
    config = registrator_config.parse(
        {
            "node": f"node-{tag}",
            "address": "192.0.2.10",
            "kv_prefix": prefix,
            "consul": {"address": consul_acl_agent.address, "token": platform_token},
            "app_config": {"directory": str(tmp_path / "app-config")},
        }
    )
    return {
        "agent": consul_acl_agent,
        "config": config,
        "prefix": prefix,
        "config_prefix": config_prefix,
        "app_token": app_token,
        "service": f"shop--v{tag}",
        "base": str(tmp_path / "app-config"),
    }


@pytest.fixture
def running_agent(setup):
    started = []

    def start(containers=None):
        agent = agent_module.AppConfigAgent(setup["config"], containers=containers or MockContainers())
        agent.block_wait = 2
        agent.start()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


def definition(setup, templates) -> bytes:
    document = {"app": "shop", "service": setup["service"], "token": setup["app_token"], "templates": templates}
    return json.dumps(document).encode()


def template(setup, name, contents, destination, **extra) -> dict:
    return {"name": name, "contents": contents, "destination": destination, "prefix": setup["config_prefix"], **extra}


def status_of(setup):
    key = layout.status_key(setup["prefix"], setup["config"].node, setup["service"])
    raw = setup["agent"].get(key)
    return None if raw is None else layout.parse_status(raw, setup["config"].node, setup["service"])


def read(path) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def modify_index(setup, key) -> int:
    found, _headers = setup["agent"].request("GET", f"/v1/kv/{key}")
    return found[0]["ModifyIndex"]


def test_renders_links_when_all_rendered_and_follows_changes(setup, running_agent):
    agent, cp, service, base = setup["agent"], setup["config_prefix"], setup["service"], setup["base"]
    agent.put(f"{cp}greeting", "hello")
    templates = [
        template(setup, "app.conf", 'greeting={{ key("' + cp + 'greeting") }}\n', "/etc/shop/app.conf"),
        template(setup, "extra.ini", 'extra={{ key("' + cp + 'extra") }}\n', "/etc/extra/extra.ini"),
    ]
    agent.put(layout.definition_key(setup["prefix"], service), definition(setup, templates))
    running_agent()
    app_conf = os.path.join(layout.rendered_dir(service, 1, base), "app.conf")  # /etc/shop sorts after /etc/extra
    extra = os.path.join(layout.rendered_dir(service, 0, base), "extra.ini")
    wait_for(lambda: read(app_conf) == "greeting=hello\n", 10, what="app.conf rendered")
    files_link = os.path.join(layout.service_dir(service, base), "files")
    time.sleep(1)  # extra's key is missing: the link must not appear meanwhile
    assert not os.path.lexists(files_link)
    assert status_of(setup).rendered is False

    agent.put(f"{cp}extra", "1")
    wait_for(lambda: os.path.islink(files_link), 10, what="the files link")
    assert read(extra) == "extra=1\n"
    assert os.readlink(files_link) == "rendered"
    token_file = os.path.join(layout.token_dir(service, base), layout.TOKEN_FILE)
    assert read(token_file) == setup["app_token"]
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(base).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(app_conf).st_mode) == 0o644
    status = wait_for(lambda: (s := status_of(setup)) and s.ready and s, 10, what="a ready status")
    assert status.key_index == modify_index(setup, f"{cp}extra")

    started = time.monotonic()
    agent.put(f"{cp}greeting", "bonjour")
    wait_for(lambda: read(app_conf) == "greeting=bonjour\n", 5, what="the change re-rendered within 5 s")
    assert time.monotonic() - started < 5
    changed_index = modify_index(setup, f"{cp}greeting")
    wait_for(lambda: status_of(setup).key_index == changed_index, 5, what="the status's key_index to follow")


def test_broken_templates_keep_the_last_good_file_and_show_in_status(setup, running_agent):
    agent, cp, service, base = setup["agent"], setup["config_prefix"], setup["service"], setup["base"]
    agent.put(f"{cp}greeting", "hello")
    agent.put(f"config/qa/other-{service}/secret", "not yours")
    good = template(setup, "app.conf", '{{ key("' + cp + 'greeting") }}\n', "/etc/shop/app.conf")
    key = layout.definition_key(setup["prefix"], service)
    agent.put(key, definition(setup, [good]))
    running_agent()
    app_conf = os.path.join(layout.rendered_dir(service, 0, base), "app.conf")
    wait_for(lambda: (s := status_of(setup)) and s.ready, 10, what="a ready status")

    agent.put(key, definition(setup, [{**good, "contents": "{{ key( }}"}]))
    status = wait_for(lambda: (s := status_of(setup)) and s.errors and s, 10, what="the syntax error in the status")
    assert "syntax error" in dict(status.errors)["app.conf"]
    assert read(app_conf) == "hello\n"
    assert status.rendered is True  # the last good file is live

    agent.put(key, definition(setup, [{**good, "contents": '{{ key("config/qa/other-' + service + '/secret") }}\n'}]))
    status = wait_for(
        lambda: (s := status_of(setup)) and "other" in dict(s.errors).get("app.conf", "") and s,
        15,
        what="the refused read in the status",
    )
    assert "cannot read key(config/qa/other-" in dict(status.errors)["app.conf"]
    assert read(app_conf) == "hello\n"


def test_bad_definition_is_refused_with_a_status(setup, running_agent):
    key = layout.definition_key(setup["prefix"], setup["service"])
    setup["agent"].put(key, b'{"app": "shop"}')
    running_agent()
    status = wait_for(lambda: status_of(setup), 10, what="a status for the bad definition")
    assert status.rendered is False
    assert "names service None" in dict(status.errors)["definition"]
    assert not os.path.exists(layout.service_dir(setup["service"], setup["base"]))
    setup["agent"].request("DELETE", f"/v1/kv/{key}")
    wait_for(lambda: status_of(setup) is None, 10, what="the bad definition's status deleted")


def test_deleted_definition_takes_its_status_and_directory(setup, running_agent):
    agent, cp, service, base = setup["agent"], setup["config_prefix"], setup["service"], setup["base"]
    agent.put(f"{cp}greeting", "hello")
    key = layout.definition_key(setup["prefix"], service)
    good = template(setup, "app.conf", '{{ key("' + cp + 'greeting") }}\n', "/etc/shop/app.conf")
    agent.put(key, definition(setup, [good]))
    containers = MockContainers()
    containers.by_service[service] = [{"Id": "a" * 64, "Labels": {}}]  # a stopped container still holds the mounts
    running_agent(containers)
    wait_for(lambda: (s := status_of(setup)) and s.ready, 10, what="a ready status")
    # A change after the link exists signals the service's containers (SIGHUP by default).
    agent.put(f"{cp}greeting", "again")
    wait_for(lambda: containers.signals == [("a" * 64, "SIGHUP")], 5, what="the SIGHUP of the change")

    agent.request("DELETE", f"/v1/kv/{key}")
    wait_for(lambda: status_of(setup) is None, 10, what="the status deleted")
    time.sleep(3)  # a container of the service is left: the directory stays
    assert os.path.isdir(layout.service_dir(service, base))
    containers.by_service[service] = []
    wait_for(lambda: not os.path.exists(layout.service_dir(service, base)), 10, what="the directory removed")


def test_leftover_directory_of_an_earlier_run_is_removed(setup, running_agent):
    leftover = layout.service_dir("gone--v1", setup["base"])
    os.makedirs(os.path.join(leftover, "rendered", "0"))
    stranger = os.path.join(setup["base"], "not a service")
    os.makedirs(stranger)
    running_agent()
    wait_for(lambda: not os.path.exists(leftover), 10, what="the earlier run's directory removed")
    assert os.path.isdir(stranger)


# -- the signal path on a real engine ---------------------------------------------------------------
def lab_image(client) -> str:
    images = [tag for image in client.images.list() for tag in image.tags if tag.startswith("dockyard-lab-base:")]
    if not images:
        pytest.skip("no local dockyard-lab-base image (make base-image)")
    return images[0]


def test_signal_reaches_a_real_container(setup, running_agent, docker_client):
    agent, cp, service, base = setup["agent"], setup["config_prefix"], setup["service"], setup["base"]
    script = 'trap "echo got-hup" HUP; while true; do sleep 0.1; done'
    container = docker_client.containers.run(
        lab_image(docker_client),
        ["sh", "-c", script],
        detach=True,
        labels={restart.SERVICE_NAME_LABEL: service},
        name=f"dockyard-test-appconfig-{uuid.uuid4().hex[:8]}",
    )
    try:
        agent.put(f"{cp}greeting", "hello")
        good = template(setup, "app.conf", '{{ key("' + cp + 'greeting") }}\n', "/etc/shop/app.conf")
        agent.put(layout.definition_key(setup["prefix"], service), definition(setup, [good]))
        url = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        running_agent(restart.NodeContainers(DockerSource(url)))
        wait_for(lambda: (s := status_of(setup)) and s.ready, 10, what="a ready status")
        assert b"got-hup" not in container.logs()  # the first render signals nobody
        agent.put(f"{cp}greeting", "changed")
        wait_for(lambda: b"got-hup" in container.logs(), 5, what="the container's HUP trap")
        assert container.logs().count(b"got-hup") == 1
        assert os.path.isdir(layout.service_dir(service, base))
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


# -- the restart path's pieces ----------------------------------------------------------------------
def test_app_lock_is_held_by_one_node_at_a_time(setup):
    client = ConsulClient(setup["config"].consul)
    key = layout.lock_key(setup["prefix"], "shop")
    first, second = restart.AppLock(client, key, "node-a"), restart.AppLock(client, key, "node-b")
    stopping = threading.Event()
    assert first.acquire(stopping)
    acquired = []
    waiter = threading.Thread(target=lambda: acquired.append(second.acquire(stopping)))
    waiter.start()
    time.sleep(1.5)
    assert acquired == []  # node-b waits while node-a holds it
    assert setup["agent"].get(key) == b"node-a"
    first.release()
    waiter.join(timeout=5)
    assert acquired == [True]
    assert setup["agent"].get(key) == b"node-b"
    second.release()
    found, _headers = setup["agent"].request("GET", f"/v1/kv/{key}")
    assert found[0].get("Session") is None


def test_app_lock_waiting_longer_than_its_ttl_keeps_its_session(setup):
    """Another node's restarts can hold the lock for minutes: the waiter's session must outlive the wait."""
    client = ConsulClient(setup["config"].consul)
    key = layout.lock_key(setup["prefix"], "shop")
    first, second = restart.AppLock(client, key, "node-a", ttl=1), restart.AppLock(client, key, "node-b", ttl=1)
    stopping = threading.Event()
    assert first.acquire(stopping)
    acquired = []
    waiter = threading.Thread(target=lambda: acquired.append(second.acquire(stopping, poll=0.2)))
    waiter.start()
    time.sleep(4)  # Consul ends an unrenewed session within twice its TTL
    assert acquired == []
    first.release()
    waiter.join(timeout=5)
    assert acquired == [True]
    assert setup["agent"].get(key) == b"node-b"
    second.release()


def test_restarter_stops_one_at_a_time_after_each_replacement_registers_wherever_swarm_places_it(setup):
    prefix, node, service = setup["prefix"], setup["config"].node, setup["service"]
    client = ConsulClient(setup["config"].consul)
    containers = MockContainers()

    def task(name):
        return {"Id": name, "Labels": {"org.dockyard.app": "shop", "com.docker.swarm.task.id": f"task-{name}"}}

    containers.by_service[service] = [task("old-1"), task("old-2")]
    # Neither another app's instance nor a key outside the instance grammar passes for a replacement.
    setup["agent"].put(instance_key(prefix, "node-z", "other", "task-z"), b"{}")
    setup["agent"].put(f"{prefix}instances/node-z/shop", b"{}")
    registered = []

    def swarm_replaces(stopped):
        """As Swarm and the registrators would: the first replacement starts on another node, the second here;
        each instance registers 1 s later, where its container runs."""
        new = f"new-{stopped}"
        where = "node-b" if stopped == "old-1" else node
        if where == node:
            containers.by_service[service].append(task(new))
        time.sleep(1)
        setup["agent"].put(f"{prefix}instances/node-z/other-{new}", b"{}")
        setup["agent"].put(instance_key(prefix, where, "shop", f"task-{new}"), b"{}")
        registered.append((new, time.monotonic()))

    original_stop, stopped_at = containers.stop, []

    def stop(container_id):
        original_stop(container_id)
        stopped_at.append(time.monotonic())
        threading.Thread(target=swarm_replaces, args=(container_id,)).start()

    containers.stop = stop
    restarter = restart.Restarter(client, containers, prefix, node, replace_timeout=10)
    restarter.poll = 0.1
    parsed = layout.Definition(app="shop", service=service, token=setup["app_token"], templates=())
    assert restarter.restart_service(parsed)
    assert containers.stops == ["old-1", "old-2"]
    assert stopped_at[1] >= registered[0][1]  # old-2 stopped only after old-1's replacement (on node-b) registered
    found, _headers = setup["agent"].request("GET", f"/v1/kv/{layout.lock_key(prefix, 'shop')}")
    assert found[0].get("Session") is None  # released


def test_restarter_gives_up_when_no_replacement_registers(setup):
    client = ConsulClient(setup["config"].consul)
    containers = MockContainers()
    service = setup["service"]
    containers.by_service[service] = [{"Id": "old-1", "Labels": {}}, {"Id": "old-2", "Labels": {}}]
    restarter = restart.Restarter(client, containers, setup["prefix"], setup["config"].node, replace_timeout=1)
    restarter.poll = 0.1
    parsed = layout.Definition(app="shop", service=service, token=setup["app_token"], templates=())
    assert restarter.restart_service(parsed) is False
    assert containers.stops == ["old-1"]  # the second instance keeps running
