"""Must show: an idle daemon holds no more than one outstanding blocking query per watched prefix.

Requests go through a small counting proxy on loopback, which records how
many requests each KV path received and how many were open at once.
"""

import time

from consul_proxy import ConsulProxy
from renderer_helpers import wait_for


def test_idle_daemon_holds_one_blocking_query_per_watched_prefix(consul_agent, renderer, tmp_path):
    for name in ("a/1", "a/2", "b/1", "c"):
        consul_agent.put(f"idle/{name}", "x")
    proxy = ConsulProxy(consul_agent.address)
    template = (
        "{% for p in tree('idle/a') %}{{ p.key }}{% endfor %}"
        "{% for p in ls('idle/a') %}{{ p.key }}{% endfor %}"  # same prefix as tree: one watch
        "{% for p in ls('idle/b') %}{{ p.key }}{% endfor %}"
        "{{ key('idle/c') }}{{ key('idle/c') }}"
    )
    daemon = renderer(
        {
            "consul": {"address": proxy.address},
            "templates": [{"name": "idle", "contents": template, "destination": str(tmp_path / "idle.conf")}],
        }
    )
    try:
        daemon.wait_ready()
        watched = {"/v1/kv/idle/a/", "/v1/kv/idle/b/", "/v1/kv/idle/c"}
        # Each watch makes its first (index 0) query, then one blocking query that stays open.
        wait_for(lambda: {p for p, n in proxy.snapshot()[1].items() if n} == watched, 5, what="blocking queries")
        total_before, _open_now, _max_open = proxy.snapshot()
        time.sleep(5)
        total_after, open_now, max_open = proxy.snapshot()
        assert set(total_after) == watched
        assert total_after == total_before, "an idle daemon must not send queries"
        assert all(open_now[path] == 1 for path in watched), open_now
        assert all(max_open[path] == 1 for path in watched), max_open
        assert daemon.template("idle")["dependencies"] == 3
    finally:
        daemon.stop()
        proxy.close()
