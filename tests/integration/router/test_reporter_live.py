"""Must show, with the real HAProxy (master-worker, the role's template, the renderer) and real Consul: the
reporter publishes a live backend server UP, DOWN once the server stops, the new server and generation after a
reload, a heartbeat while nothing changes, an error while HAProxy is gone; it keeps running while Consul is away
and reports again once it is back; with a token limited to its own key it writes that key and nothing else."""

import json
import re
import subprocess
import time
import urllib.error
import uuid

from haproxy_helpers import wait_for
from support.consul_agent import ConsulAgent
from support.engine_process import ENGINES, EngineProcess


def report(consul, prefix, node="r1"):
    value = consul.get(f"{prefix}routers/{node}")
    return json.loads(value) if value else None


def server_state(consul, prefix, backend, server, node="r1"):
    found = report(consul, prefix, node)
    return ((found or {}).get("backends", {}).get(backend, {}).get(server) or {}).get("state")


def serve_web(proxy, backend, task="t1"):
    proxy.put_route("web", {"hosts": ["web.test"], "health": {"path": "/health", "interval": "500ms"}})
    proxy.put_instance("web", "node1", task, backend.port)


def test_a_live_server_is_up_then_down_once_it_stops(consul_agent, router, reporter, backends, prefix):
    proxy = router(consul_agent)
    (web,) = backends("web-1")
    serve_web(proxy, web)
    daemon = reporter(proxy, consul_agent)
    wait_for(lambda: server_state(consul_agent, prefix, "app_web", "node1-t1") == "UP", 20, what="web UP")
    found = report(consul_agent, prefix)
    assert f"server node1-t1 127.0.0.1:{web.port} weight 100" in proxy.live.read_text()
    assert found["backends"]["app_web"]["node1-t1"] == {
        "addr": "127.0.0.1",
        "port": web.port,
        "state": "UP",
        "weight": 100,
    }
    assert found["node"] == "r1" and found["heartbeat_ms"] == 2000 and abs(found["updated"] - time.time()) < 5
    web.stop()
    wait_for(lambda: server_state(consul_agent, prefix, "app_web", "node1-t1") == "DOWN", 20, what="web DOWN")
    assert daemon.alive()
    assert consul_agent.keys(f"{prefix}routers/") == [f"{prefix}routers/r1"]


def test_a_reload_reports_the_new_server_and_generation(consul_agent, router, reporter, backends, prefix):
    proxy = router(consul_agent)
    first, second = backends("web-1", "web-2")
    serve_web(proxy, first)
    reporter(proxy, consul_agent)
    wait_for(lambda: server_state(consul_agent, prefix, "app_web", "node1-t1") == "UP", 20, what="web-1 UP")
    before = report(consul_agent, prefix)
    proxy.put_instance("web", "node1", "t2", second.port)
    wait_for(lambda: server_state(consul_agent, prefix, "app_web", "node1-t2") == "UP", 20, what="web-2 UP")
    after = report(consul_agent, prefix)
    assert after["reloads"] > before["reloads"] and after["worker"] != before["worker"]
    assert after["backends"]["app_web"]["node1-t1"]["state"] == "UP"
    # The generation the reporter names is the master's reload counter.
    master = re.search(r"master\s+([0-9]+)", proxy.master("show proc"))
    assert int(master.group(1)) == after["reloads"]


def test_a_quiet_router_sends_a_heartbeat(consul_agent, router, reporter, backends, prefix):
    proxy = router(consul_agent)
    (web,) = backends("web-1")
    serve_web(proxy, web)
    daemon = reporter(proxy, consul_agent)
    wait_for(lambda: server_state(consul_agent, prefix, "app_web", "node1-t1") == "UP", 20, what="web UP")
    first = report(consul_agent, prefix)
    later = wait_for(
        lambda: (found := report(consul_agent, prefix))["updated"] >= first["updated"] + 1.5 and found,
        6,
        what="a heartbeat",
    )
    assert {k: v for k, v in later.items() if k != "updated"} == {k: v for k, v in first.items() if k != "updated"}
    assert daemon.log_lines("heartbeat written", f"key={prefix}routers/r1")


def test_consul_away_and_back_and_haproxy_gone(tmp_path, router, reporter, backends, prefix):
    consul = ConsulAgent(tmp_path / "consul")
    (tmp_path / "consul").mkdir()
    consul.start()
    try:
        proxy = router(consul)
        (web,) = backends("web-1")
        serve_web(proxy, web)
        daemon = reporter(proxy, consul)
        wait_for(lambda: server_state(consul, prefix, "app_web", "node1-t1") == "UP", 20, what="web UP")
        consul.stop()
        wait_for(lambda: daemon.log_lines("cannot write the report, retrying"), 10, what="a failed write logged")
        assert daemon.alive()
        consul.start()
        written = time.time()
        wait_for(lambda: (report(consul, prefix) or {}).get("updated", 0) > written, 20, what="a report after")
        assert daemon.alive()

        proxy.haproxy.terminate()
        proxy.haproxy.wait(10)
        gone = wait_for(lambda: (report(consul, prefix) or {}).get("error"), 20, what="HAProxy's absence reported")
        assert gone.startswith("HAProxy unreadable for ") and report(consul, prefix)["backends"] == {}
        assert daemon.alive()
    finally:
        consul.stop()


def make_token(agent, rules: dict) -> str:
    name = f"router-test-{uuid.uuid4().hex[:8]}"
    agent.request("PUT", "/v1/acl/policy", json.dumps({"Name": name, "Rules": json.dumps(rules)}).encode())
    token, _headers = agent.request("PUT", "/v1/acl/token", json.dumps({"Policies": [{"Name": name}]}).encode())
    return token["SecretID"]


def test_a_token_limited_to_its_key_is_enough_and_writes_nothing_else(consul_acl_agent, router, reporter, prefix):
    # As the consul role's router-<node> policy: write on the router's own key, nothing else.
    token = make_token(consul_acl_agent, {"key": {f"{prefix}routers/r1": {"policy": "write"}}})
    proxy = router(consul_acl_agent, renderer=False)
    daemon = reporter(proxy, consul_acl_agent, token=token)
    found = wait_for(lambda: report(consul_acl_agent, prefix), 15, what="the report written with the token")
    assert found["node"] == "r1" and found["reloads"] == 0
    assert consul_acl_agent.keys(prefix) == [f"{prefix}routers/r1"]
    for other in (f"{prefix}routers/r2", f"{prefix}routers/r1x", f"{prefix}routes/web"):
        try:
            consul_acl_agent.request("PUT", f"/v1/kv/{other}", b"{}", token=token)
        except urllib.error.HTTPError as error:
            assert error.code == 403
        else:
            raise AssertionError(f"the router's token wrote {other}")
    assert token not in daemon.log(), "the token must never be logged"
    assert daemon.stop() == 0


def test_a_denied_write_is_logged_and_the_reporter_keeps_running(consul_acl_agent, router, reporter, prefix):
    token = make_token(consul_acl_agent, {"key": {f"{prefix}routers/other": {"policy": "write"}}})
    proxy = router(consul_acl_agent, renderer=False)
    daemon = reporter(proxy, consul_acl_agent, token=token)
    wait_for(lambda: daemon.log_lines("level=error", "cannot write the report", "HTTP 403"), 15, what="403 logged")
    assert daemon.alive() and consul_acl_agent.keys(prefix) == []
    status = json.loads(daemon.config_path.with_name("status-r1.json").read_text())
    assert not status["healthy"] and status["failures"]["consul"] >= 1


def test_once_mode_prints_the_report_and_writes_nothing(consul_agent, router, reporter, backends, prefix):
    proxy = router(consul_agent)
    (web,) = backends("web-1")
    serve_web(proxy, web)
    proxy.wait_rendered(lambda text: "server node1-t1" in text)
    wait_for(lambda: "node1-t1" in proxy.master("@1 show servers state"), 10, what="the reload")
    config = {"node": "r9", "master_socket": str(proxy.master_socket)}
    once = EngineProcess(proxy.workdir, "router-once", f"{ENGINES}.router.cli", config)
    ran = subprocess.run(once.argv("once"), capture_output=True, text=True, env=once.env, timeout=30, check=False)
    assert ran.returncode == 0, ran.stderr
    printed = json.loads(ran.stdout)
    assert printed["key"] == "dockyard/routers/r9"
    assert printed["value"]["backends"]["app_web"]["node1-t1"]["port"] == web.port
    assert consul_agent.keys(f"{prefix}routers/") == []
