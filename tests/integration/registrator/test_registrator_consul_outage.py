"""Must show: with Consul stopped, the registrator keeps running; when Consul is back it catches up with what
happened meanwhile; when its session is invalidated it creates a new one and registers everything again."""

import time

from registrator_helpers import app_labels, task_of, wait_for


def test_outage_then_invalidated_session(consul_private_agent, registrator, containers):
    agent = consul_private_agent
    daemon, kv = registrator(agent)
    wait_for(kv.session, 10, what="the registrator's session")
    before, gone = containers(labels=app_labels("web")), containers(labels=app_labels("web"))
    for container in (before, gone):
        wait_for(lambda c=container: kv.entry(kv.key("web", task_of(c))), 2, what=f"{container.name} registered")

    agent.stop()
    gone.kill()
    during = containers(labels=app_labels("web"))
    time.sleep(3)  # several failed writes and renewals
    assert daemon.alive()
    agent.start()

    expected = sorted(kv.key("web", task_of(container)) for container in (before, during))
    wait_for(lambda: sorted(kv.keys()) == expected, 10, 0.1, what="the registrator to catch up after the outage")
    assert daemon.alive()

    session = kv.session()
    agent.request("PUT", f"/v1/session/destroy/{session}")
    assert kv.keys() == [], "Behavior delete: the keys go with the session"
    wait_for(lambda: kv.session() not in (None, session), 10, 0.1, what="a new session")
    wait_for(lambda: sorted(kv.keys()) == expected, 5, 0.1, what="everything registered again")
    assert {kv.entry(key)["Session"] for key in expected} == {kv.session()}
    assert "session invalidated" in daemon.log()
