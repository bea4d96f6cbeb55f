"""Must show: the periodic resync deletes keys the node owns that nothing runs for, adds what runs but is
missing, re-acquires a key written without its session, and leaves other nodes' keys alone."""

from registrator_helpers import app_labels, task_of, wait_for


def test_resync_removes_stale_and_restores_missing_keys(consul_agent, registrator, containers):
    _daemon, kv = registrator(consul_agent, resync_interval="1s")
    session = wait_for(kv.session, 10, what="the registrator's session")
    web = containers(labels=app_labels("web"))
    key = kv.key("web", task_of(web))
    wait_for(lambda: kv.entry(key), 2, what="registration")

    stale = kv.key("web", "no-such-task")
    other_node = kv.key("web", "their-task", node="another-node")
    consul_agent.put(stale, '{"addr": "192.0.2.10", "port": 1, "version": "0", "track": "stable"}')
    consul_agent.put(other_node, '{"addr": "192.0.2.99", "port": 1, "version": "0", "track": "stable"}')
    consul_agent.request("DELETE", f"/v1/kv/{key}")

    wait_for(lambda: kv.entry(stale) is None, 3, what="the resync to delete a stale key of this node")
    wait_for(lambda: kv.entry(key), 3, what="the resync to restore a deleted key")
    assert kv.entry(key)["Session"] == session
    assert kv.entry(other_node) is not None, "another node's key is not ours to delete"

    consul_agent.put(key, '{"addr": "10.9.9.9", "port": 1, "version": "x", "track": "stable"}')
    wait_for(lambda: kv.entry(key)["Value"]["addr"] == "192.0.2.10", 3, what="the resync to correct a changed value")
