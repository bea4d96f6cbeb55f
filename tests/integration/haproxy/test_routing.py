"""Must show: the role's template, rendered by the real renderer from real Consul, passes
`haproxy -c` and routes by Host header and by service port; bad routes and instances are skipped
with a logged error while the rest renders; canary weights split the traffic."""

import json
import re

from haproxy_helpers import check_config, request, wait_for
from support.consul_agent import free_port


def test_bootstrap_and_rendered_configurations_pass_the_check(router, backends):
    proxy = router()
    (web,) = backends("web-1")
    proxy.put_route("web", {"hosts": ["web.test"], "health": {"path": "/health", "interval": "1s"}, "sticky": True})
    proxy.put_instance("web", "node1", "task1", web.port)
    proxy.wait_rendered(lambda text: "server node1-task1" in text, what="web's server")
    checked = check_config(proxy.live)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = proxy.live.read_text()
    assert "{{" not in text and "{%" not in text
    assert "option httpchk" in text and "http-check send meth GET uri /health" in text
    assert "cookie DOCKYARD_app_web insert indirect nocache" in text
    assert "inter 1000ms fastinter 1000ms downinter 10000ms" in text
    # The management port: stats (CSV) and the Prometheus exporter.
    wait_for(lambda: "node1-task1" in proxy.servers("app_web"), 10, what="the reload")
    metrics = request(proxy.management_port, path="/metrics")
    assert metrics[0] == 200 and "haproxy_process_" in metrics[1]


def test_requests_are_routed_by_host_header_and_by_service_port(router, backends):
    proxy = router()
    alpha, beta = backends("alpha-1", "beta-1")
    service_port = free_port()
    proxy.put_route("alpha", {"hosts": ["alpha.test", "www.alpha.test"]})
    proxy.put_route("beta", {"service_port": service_port, "health": {"path": "/health"}})
    proxy.put_instance("alpha", "node1", "a1", alpha.port)
    proxy.put_instance("beta", "node2", "b1", beta.port)
    proxy.wait_rendered(lambda text: "server node2-b1" in text and "server node1-a1" in text, what="both apps")
    wait_for(lambda: proxy.management_up() and "node2-b1" in proxy.servers("app_beta"), 10, what="the reload")

    # Case-insensitive, port ignored.
    assert request(proxy.http_port, "alpha.test") == (200, "alpha-1")
    assert request(proxy.http_port, "WWW.Alpha.TEST:8080") == (200, "alpha-1")
    assert request(service_port, "anything.test") == (200, "beta-1")
    status, body = request(proxy.http_port, "unknown.test")
    assert status == 404 and "no route" in body
    assert request(proxy.http_port, "beta.test")[0] == 404, "beta has no hosts"


def test_bad_routes_and_instances_are_skipped_with_a_logged_error(router, backends):
    proxy = router()
    (alpha,) = backends("alpha-1")
    proxy.put_route("alpha", {"hosts": ["alpha.test"]})
    proxy.put_instance("alpha", "node1", "a1", alpha.port)
    proxy.wait_rendered(lambda text: "server node1-a1" in text)
    wait_for(lambda: request(proxy.http_port, "alpha.test") == (200, "alpha-1"), 10, what="alpha routed")

    proxy.put_route("broken", "{not json")
    proxy.put_route("impossible", {"hosts": ["impossible.test"], "service_port": 70000})
    proxy.put_route("typo", {"hosts": ["typo.test"], "helth": {"path": "/"}})
    proxy.put_route("thief", {"hosts": ["alpha.test"]})  # alpha, the older claim, keeps the host
    proxy.consul.put(f"{proxy.prefix}instances/node2/alpha/bad", "not json")
    proxy.consul.put(f"{proxy.prefix}instances/node3/alpha/noaddr", '{"port": 80}')
    proxy.put_route("zulu", {"hosts": ["zulu.test"]})  # a good route after the bad ones still renders
    proxy.wait_rendered(lambda text: "backend app_zulu" in text, what="zulu despite the bad routes")

    text = proxy.live.read_text()
    for skipped in ("app_broken", "app_impossible", "app_typo", "app_thief", "node2-bad", "node3-noaddr"):
        assert skipped not in text
    checked = check_config(proxy.live)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert request(proxy.http_port, "alpha.test") == (200, "alpha-1")
    # zulu has no instance: its backend exists and answers 503.
    wait_for(lambda: request(proxy.http_port, "zulu.test")[0] == 503, 10, what="zulu's 503")

    def logged():
        log = proxy.renderer.log()
        return [line for line in log.splitlines() if "level=error" in line and "template=haproxy" in line]

    errors = wait_for(lambda: len(logged()) >= 6 and logged(), 10, what="six logged errors")
    joined = "\n".join(errors)
    assert re.search(r"route broken: invalid JSON", joined)
    assert "route impossible: service_port: expected a port number 1-65535, got 70000" in joined
    assert "route typo: unknown key(s) helth" in joined
    assert "route thief: skipped, it claims host alpha.test (taken by route alpha)" in joined
    assert "instance node2/alpha/bad: invalid JSON" in joined
    assert "instance node3/alpha/noaddr: addr" in joined
    status = proxy.status()
    assert len(status["skipped"]) == 6 and status["last_error"] is None


def test_canary_weight_splits_new_traffic(router, backends):
    proxy = router()
    stable_a, stable_b, canary = backends("stable-a", "stable-b", "canary")
    proxy.put_route("shop", {"hosts": ["shop.test"], "canary_weight": 10})
    proxy.put_instance("shop", "node1", "s1", stable_a.port)
    proxy.put_instance("shop", "node2", "s2", stable_b.port)
    proxy.put_instance("shop", "node3", "c1", canary.port, track="canary")
    proxy.wait_rendered(lambda text: "server node3-c1" in text)
    wait_for(lambda: "node3-c1" in proxy.servers("app_shop"), 10, what="the reload")
    weights = {name: int(row["weight"]) for name, row in proxy.servers("app_shop").items()}
    assert weights == {"node1-s1": 9, "node2-s2": 9, "node3-c1": 2}, weights

    counts = {}
    for _request in range(400):
        status, body = request(proxy.http_port, "shop.test")
        assert status == 200
        counts[body] = counts.get(body, 0) + 1
    assert 36 <= counts.get("canary", 0) <= 44, counts  # 10% of 400, smooth weighted round robin
    assert abs(counts["stable-a"] - counts["stable-b"]) <= 4, counts

    proxy.put_route("shop", json.dumps({"hosts": ["shop.test"], "canary_weight": 0}))
    proxy.wait_rendered(lambda text: f"server node3-c1 127.0.0.1:{canary.port} weight 0" in text)
    wait_for(lambda: proxy.servers("app_shop")["node3-c1"]["weight"] == "0", 10, what="canary weight 0")
    before = canary.hits
    for _request in range(50):
        assert request(proxy.http_port, "shop.test")[0] == 200
    assert canary.hits == before, "a canary of weight 0 gets no new traffic"


def test_a_health_check_can_require_text_in_the_answer(router, backends):
    proxy = router()
    good, bad = backends("ready-1", "booting-1")
    # Both answer 200 on /health; only one answer holds the text the route asks for.
    proxy.put_route(
        "web", {"hosts": ["web.test"], "health": {"path": "/health", "body_contains": "ready", "interval": "200ms"}}
    )
    proxy.put_instance("web", "node1", "good", good.port)
    proxy.put_instance("web", "node2", "bad", bad.port)
    proxy.wait_rendered(lambda text: "http-check expect string ready" in text, what="the body check")

    def states():
        servers = proxy.servers("app_web")
        return {name: row["status"] for name, row in servers.items()}

    wait_for(lambda: states() == {"node1-good": "UP", "node2-bad": "DOWN"}, 15, what="only the ready instance up")
    assert {request(proxy.http_port, "web.test")[1] for _attempt in range(6)} == {"ready-1"}
