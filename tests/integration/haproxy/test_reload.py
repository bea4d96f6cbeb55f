"""Must show: reloads are hitless (200 reloads at two per second, driven through Consul and the
renderer, while clients open a new connection per request: zero failed requests), and an
instance that stops listening costs no request (retry-on + redispatch)."""

import os
import time

import pytest
from haproxy_helpers import Load, request, wait_for

RELOADS = int(os.environ.get("DOCKYARD_HAPROXY_RELOADS", "200"))


def _reloads(proxy) -> int:
    """The master's reload counter (show proc)."""
    for line in proxy.master("show proc").splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "master":
            return int(fields[2])
    raise AssertionError("no master in show proc")


@pytest.mark.slow
def test_reloads_at_two_per_second_lose_no_request(router, backends):
    proxy = router()
    one, two = backends("web-1", "web-2")
    proxy.put_route("web", {"hosts": ["web.test"], "health": {"path": "/health"}, "canary_weight": 20})
    proxy.put_instance("web", "node1", "t1", one.port)
    proxy.put_instance("web", "node2", "t2", two.port, track="canary")
    proxy.wait_rendered(lambda text: "server node2-t2" in text)
    wait_for(lambda: request(proxy.http_port, "web.test")[0] == 200, 10, what="web routed")
    renders_before, reloads_before = proxy.status()["render_count"], _reloads(proxy)

    with Load(proxy.http_port, "web.test", threads=4) as load:
        changes = 0
        # Each change alters the weights (21, 20, 21, ...: the first differs from the initial 20), so each gives
        # one render and one reload; a change every 0.5 s until RELOADS renders (on a busy machine a slow render
        # merges two changes, so it may take more changes than renders).
        while proxy.status()["render_count"] - renders_before < RELOADS and changes < RELOADS * 2:
            weight = 21 - changes % 2
            proxy.put_route("web", {"hosts": ["web.test"], "health": {"path": "/health"}, "canary_weight": weight})
            changes += 1
            time.sleep(0.5)
        if changes % 2:  # end on weight 20 (4:1) so the last check below knows the weights
            proxy.put_route("web", {"hosts": ["web.test"], "health": {"path": "/health"}, "canary_weight": 20})
        wait_for(lambda: "weight 1" in proxy.live.read_text(), 10, what="the last render")
        time.sleep(1.5)

    assert load.failures == [], f"{len(load.failures)} failed of {load.ok + len(load.failures)}: {load.failures[:5]}"
    assert load.ok > RELOADS * 5, f"only {load.ok} requests went through"
    renders = proxy.status()["render_count"] - renders_before
    reloads = _reloads(proxy) - reloads_before
    assert renders >= RELOADS, f"{renders} renders for {RELOADS} changes"
    assert proxy.status()["command_failures"] == 0
    # Two SIGUSR2 that reach the master during one re-exec make one reload (of the newer file): allow a few.
    assert reloads >= renders * 0.95, f"HAProxy's master counted {reloads} reloads for {renders} renders"
    # The running configuration is the last one rendered: web's canary weighs as canary_weight 20 says.
    weights = {name: row["weight"] for name, row in proxy.servers("app_web").items()}
    assert weights == {"node1-t1": "4", "node2-t2": "1"}, weights


def test_an_instance_that_stops_costs_no_request(router, backends):
    proxy = router()
    one, two, three = backends("web-1", "web-2", "web-3")
    # A long check interval: only retry-on and redispatch can save the requests sent to the stopped instance.
    proxy.put_route("web", {"hosts": ["web.test"], "health": {"path": "/health", "interval": "1h"}})
    for node, backend in (("node1", one), ("node2", two), ("node3", three)):
        proxy.put_instance("web", node, backend.name, backend.port)
    proxy.wait_rendered(lambda text: "server node3-web-3" in text)
    wait_for(lambda: request(proxy.http_port, "web.test")[0] == 200, 10, what="web routed")

    with Load(proxy.http_port, "web.test", threads=4) as load:
        time.sleep(1)
        two.stop()  # still registered, still UP in HAProxy: connections to it are refused
        hits_after_stop = one.hits + three.hits
        time.sleep(3)
    assert load.failures == [], load.failures[:5]
    assert one.hits + three.hits > hits_after_stop + 50
    row = proxy.servers("app_web")["node2-web-2"]
    assert int(row["wredis"]) + int(row["wretr"]) > 0, "requests to the stopped instance were retried elsewhere"
