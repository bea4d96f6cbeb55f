"""Must show: a labelled Swarm task appears in Consul within 2 s, under the node's session, with the right value;
an unlabelled or mislabelled one, or a plain container wearing the app label, never does;
kill and stop remove the key within 1 s; a HEALTHCHECK gates it."""

import threading
import time

from registrator_helpers import app_labels, host_port, task_of, timed, wait_for


def test_labelled_container_appears_under_the_session(consul_agent, registrator, containers):
    daemon, kv = registrator(consul_agent)
    session = wait_for(kv.session, 10, what="the registrator's session")
    plain = containers(labels={"purpose": "not an app"})
    started = time.monotonic()
    web = containers(labels=app_labels("web", version="2.3.1"))
    key = kv.key("web", task_of(web))
    elapsed = timed(lambda: kv.entry(key), 2 - (time.monotonic() - started), f"{key} to appear")
    print(f"registered in {elapsed:.2f}s after docker run returned")
    entry = kv.entry(key)
    assert entry["Value"] == {"addr": "192.0.2.10", "port": host_port(web), "version": "2.3.1", "track": "stable"}
    assert entry["Session"] == session

    time.sleep(1)
    assert kv.keys() == [key], f"only the labelled container is registered, not {plain.name}"
    assert daemon.alive()


def test_swarm_task_id_canary_track_and_bad_labels(consul_agent, registrator, containers):
    daemon, kv = registrator(consul_agent, resync_interval="1s")
    wait_for(kv.session, 10, what="the registrator's session")
    canary = containers(
        labels=app_labels("api", version="9", **{"org.dockyard.track": "canary", "com.docker.swarm.task.id": "t4sk1d"})
    )
    bad = {
        "port": containers(labels=app_labels("api", port="http")),
        "unpublished": containers(labels=app_labels("api"), publish=False),
        "track": containers(labels=app_labels("api", **{"org.dockyard.track": "beta"})),
        "app": containers(labels=app_labels("a/b")),
        # A plain `docker run --label org.dockyard.app=api`: not a task of a Swarm service.
        "swarm": containers(
            labels=app_labels("api", **{"com.docker.swarm.service.id": None, "com.docker.swarm.task.id": None})
        ),
        # What the routers' gate refuses is refused at the source.
        "version": containers(labels=app_labels("api", version="9\nserver evil 10.9.9.9:80")),
    }
    key = kv.key("api", "t4sk1d")
    wait_for(lambda: kv.entry(key), 2, what=f"{key} to appear")
    assert task_of(canary) == "t4sk1d"
    assert kv.entry(key)["Value"] == {
        "addr": "192.0.2.10",
        "port": host_port(canary),
        "version": "9",
        "track": "canary",
    }

    time.sleep(2.5)  # at least two resyncs: each bad container is still reported once only
    assert kv.keys() == [key]
    expected = {
        "port": "label org.dockyard.port='http' is not a TCP port",
        "unpublished": "8080/tcp is not published on the host",
        "track": "label org.dockyard.track='beta' is not stable or canary",
        "app": "label org.dockyard.app='a/b' is not an app name",
        "swarm": "not a Swarm service's task",
        "version": "the routers would refuse its instance",
    }
    for case, container in bad.items():
        errors = daemon.log_lines("level=error", "container skipped", container.name)
        assert len(errors) == 1, f"{case}: expected one error naming {container.name}, got {errors}"
        assert expected[case] in errors[0]
    assert "version: expected an image tag" in daemon.log_lines("container skipped", bad["version"].name)[0]
    assert daemon.alive()


def test_kill_and_stop_remove_the_key_within_a_second(consul_agent, registrator, containers):
    _daemon, kv = registrator(consul_agent)
    wait_for(kv.session, 10, what="the registrator's session")
    killed, stopped = containers(labels=app_labels("web")), containers(labels=app_labels("web"))
    for container in (killed, stopped):
        wait_for(lambda c=container: kv.entry(kv.key("web", task_of(c))), 2, what=f"{container.name} registered")

    started = time.monotonic()
    killed.kill()
    elapsed = timed(lambda: kv.entry(kv.key("web", task_of(killed))) is None, 1 - (time.monotonic() - started), "kill")
    print(f"docker kill: key gone {elapsed:.2f}s after the kill returned")

    # sleep as PID 1 ignores SIGTERM: docker stop waits its timeout, but the key must go on the kill event.
    stopper = threading.Thread(target=stopped.stop, kwargs={"timeout": 5})
    started = time.monotonic()
    stopper.start()
    timed(lambda: kv.entry(kv.key("web", task_of(stopped))) is None, 1, "the key of a stopping container to go")
    print(f"docker stop: key gone {time.monotonic() - started:.2f}s after the stop began")
    assert stopper.is_alive(), "the key went while the container was still stopping"
    stopper.join()
    assert kv.keys() == []


def test_healthcheck_gates_registration(consul_agent, registrator, containers):
    _daemon, kv = registrator(consul_agent)
    wait_for(kv.session, 10, what="the registrator's session")
    web = containers(
        labels=app_labels("web"),
        healthcheck={"test": ["CMD", "test", "-e", "/tmp/healthy"], "interval": 200_000_000, "retries": 1},
    )
    key = kv.key("web", task_of(web))
    wait_for(lambda: web.reload() or web.attrs["State"]["Health"]["Status"] == "unhealthy", 10, what="unhealthy")
    assert kv.entry(key) is None, "an unhealthy container must not be registered"

    web.exec_run(["touch", "/tmp/healthy"])
    wait_for(lambda: kv.entry(key), 3, what="registration once healthy")
    web.exec_run(["rm", "/tmp/healthy"])
    wait_for(lambda: kv.entry(key) is None, 3, what="deregistration once unhealthy")
