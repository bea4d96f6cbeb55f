"""Must show: an idle daemon holds no more than one outstanding blocking query per watched prefix.

Requests go through a small counting proxy on loopback, which records how
many requests each KV path received and how many were open at once.
"""

import socket
import threading
import time
import urllib.parse
from collections import Counter

from renderer_helpers import wait_for


class CountingProxy:
    def __init__(self, upstream: tuple):
        self.upstream = upstream
        self.lock = threading.Lock()
        self.total = Counter()
        self.open = Counter()
        self.max_open = Counter()
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.address = f"127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _address = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                client.close()
                return
            head += chunk
        path = urllib.parse.urlsplit(head.split(b" ", 2)[1].decode()).path
        with self.lock:
            self.total[path] += 1
            self.open[path] += 1
            self.max_open[path] = max(self.max_open[path], self.open[path])
        try:
            with socket.create_connection(self.upstream) as upstream:
                upstream.sendall(head)
                while True:
                    data = upstream.recv(65536)
                    if not data:
                        break
                    client.sendall(data)
        except OSError:
            pass
        finally:
            client.close()
            with self.lock:
                self.open[path] -= 1

    def snapshot(self):
        with self.lock:
            return Counter(self.total), Counter(self.open), Counter(self.max_open)

    def close(self):
        self.server.close()


def test_idle_daemon_holds_one_blocking_query_per_watched_prefix(consul_agent, renderer, tmp_path):
    for name in ("a/1", "a/2", "b/1", "c"):
        consul_agent.put(f"idle/{name}", "x")
    host, port = consul_agent.address.split(":")
    proxy = CountingProxy((host, int(port)))
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
