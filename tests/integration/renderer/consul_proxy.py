"""A loopback proxy in front of a real Consul agent, for the renderer's integration tests.

It counts the requests each KV path receives and how many are open at once,
records each request's query parameters, and, on request, truncates the
answers to chosen paths: a real agent never sends half an answer, so this is
how a test makes it happen (http.client.IncompleteRead in the client).
"""

import socket
import threading
import urllib.parse
from collections import Counter

TRUNCATED_BYTES = 5  # left off the end of a truncated answer


class ConsulProxy:
    def __init__(self, upstream_address: str):
        host, port = upstream_address.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.lock = threading.Lock()
        self.total = Counter()
        self.open = Counter()
        self.max_open = Counter()
        self.queries = []  # (path, {parameter: value}) of every request, in order
        self.truncate = set()  # paths whose answers are cut short
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
        target = urllib.parse.urlsplit(head.split(b" ", 2)[1].decode())
        path = target.path
        with self.lock:
            self.total[path] += 1
            self.open[path] += 1
            self.max_open[path] = max(self.max_open[path], self.open[path])
            self.queries.append((path, dict(urllib.parse.parse_qsl(target.query, keep_blank_values=True))))
        try:
            with socket.create_connection(self.upstream) as upstream:
                upstream.sendall(head)
                answer = self._read_all(upstream)  # the client sends Connection: close, so the agent closes
            with self.lock:
                cut = path in self.truncate
            client.sendall(answer[:-TRUNCATED_BYTES] if cut else answer)
        except OSError:
            pass
        finally:
            client.close()
            with self.lock:
                self.open[path] -= 1

    @staticmethod
    def _read_all(upstream) -> bytes:
        chunks = []
        while True:
            data = upstream.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def snapshot(self):
        with self.lock:
            return Counter(self.total), Counter(self.open), Counter(self.max_open)

    def queries_of(self, path: str) -> list:
        with self.lock:
            return [params for seen, params in self.queries if seen == path]

    def close(self):
        self.server.close()
