"""Must show: SIGTERM destroys the session so the node's instances vanish at once (exit 0); a hard kill leaves
them to the session's TTL, and they vanish within session_ttl (+3 s of slack); an upgraded registrator removes
the old key layout (<prefix>instances/<app>/<node>/<task>) a hard-killed old run left behind, at once."""

import json

import pytest
from registrator_helpers import app_labels, task_of, timed, wait_for

SESSION_TTL = 20


def test_sigterm_destroys_the_session_and_the_instances_go_at_once(consul_agent, registrator, containers):
    daemon, kv = registrator(consul_agent)
    wait_for(kv.session, 10, what="the registrator's session")
    web = containers(labels=app_labels("web"))
    wait_for(lambda: kv.entry(kv.key("web", task_of(web))), 2, what="registration")

    assert daemon.stop() == 0
    assert kv.sessions() == []
    assert kv.keys() == [], "the instances must vanish with the session, before the daemon exits"
    assert "session destroyed" in daemon.log()


@pytest.mark.slow
def test_hard_kill_instances_vanish_within_session_ttl(consul_agent, registrator, containers):
    daemon, kv = registrator(consul_agent, session_ttl=f"{SESSION_TTL}s")
    session = wait_for(kv.session, 10, what="the registrator's session")
    ttl = consul_agent.request("GET", f"/v1/session/info/{session}")[0][0]["TTL"]
    assert ttl == f"{SESSION_TTL // 2}s", "Consul may take twice the TTL: the session gets half of session_ttl"
    assert consul_agent.request("GET", f"/v1/session/info/{session}")[0][0]["LockDelay"] == 0
    web = containers(labels=app_labels("web"))
    wait_for(lambda: kv.entry(kv.key("web", task_of(web))), 2, what="registration")

    daemon.kill()
    assert kv.keys() != [], "a hard kill cleans nothing up"
    elapsed = timed(lambda: kv.keys() == [], SESSION_TTL + 3, "the dead registrator's instances to vanish")
    print(f"instances vanished {elapsed:.1f}s after the hard kill (bound: session_ttl {SESSION_TTL}s)")
    assert kv.sessions() == []


def test_restart_after_a_crash_replaces_the_old_session_and_resyncs(consul_agent, registrator, containers):
    first, kv = registrator(consul_agent, name="first")
    old_session = wait_for(kv.session, 10, what="the first run's session")
    gone, kept = containers(labels=app_labels("web")), containers(labels=app_labels("web"))
    for container in (gone, kept):
        wait_for(lambda c=container: kv.entry(kv.key("web", task_of(c))), 2, what=f"{container.name} registered")
    first.kill()
    gone.remove(force=True)  # while no registrator runs: nobody sees its events

    second, _kv = registrator(consul_agent, name="second")
    wait_for(lambda: kv.session() not in (None, old_session), 10, what="a new session replacing the old one")
    wait_for(lambda: kv.keys() == [kv.key("web", task_of(kept))], 3, what="the stale key gone and the live one kept")
    assert kv.entry(kv.key("web", task_of(kept)))["Session"] == kv.session()
    assert "destroyed the session of an earlier run" in second.log()


def test_an_upgraded_registrator_removes_the_old_layouts_keys_of_its_node_at_once(consul_agent, registrator, names):
    """A hard-killed registrator of the old layout left keys the routers would read as node=<app>: the new run
    destroys the old run's session (named for this node), and Consul deletes every key it held."""
    node, prefix = names["node"], names["kv_prefix"]
    old_session = consul_agent.request(
        "PUT",
        "/v1/session/create",
        json.dumps({"Name": f"dockyard-registrator {node}", "TTL": "600s", "Behavior": "delete"}).encode(),
    )[0]["ID"]
    old_key = f"{prefix}instances/web/{node}/t-old"
    value = json.dumps({"addr": "192.0.2.10", "port": 1, "version": "0", "track": "stable"})
    assert consul_agent.request("PUT", f"/v1/kv/{old_key}?acquire={old_session}", value.encode())[0] is True

    daemon, kv = registrator(consul_agent)
    timed(lambda: consul_agent.get(old_key) is None, 5, "the old layout's key to go with the old session")
    assert old_session not in kv.sessions()
    assert "destroyed the session of an earlier run" in daemon.log()
