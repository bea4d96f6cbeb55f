"""Must show: no request is replayed. A request that reached an instance which then closed its connection
without answering is sent again to another instance only when repeating it is safe: GET (and the other
idempotent methods), or a request carrying the route's idempotency_header. A POST is never executed twice."""

import contextlib
import http.client
import socket
import threading

import pytest
from haproxy_helpers import wait_for


class Executions:
    """A loopback HTTP instance that counts every request it starts, by method and path.

    A dying instance reads each request whole, counts it, and closes the connection without a byte of
    answer: what an app that exits at once on SIGTERM does to the requests it holds.
    """

    def __init__(self, name: str, dying: bool):
        self.name = name
        self.dying = dying
        self.started = []  # (method, path) of every request read
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                connection, _peer = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection):
        with connection, contextlib.suppress(OSError):
            stream = connection.makefile("rb")
            while True:
                line = stream.readline()
                if not line:
                    return
                method, path, _version = line.decode().split(" ", 2)
                length = 0
                while (header := stream.readline()) not in (b"\r\n", b""):
                    name, _colon, value = header.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                stream.read(length)
                with self.lock:
                    self.started.append((method, path))
                if self.dying:
                    return
                body = self.name.encode()
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    def count(self, method: str, path: str) -> int:
        with self.lock:
            return self.started.count((method, path))

    def stop(self):
        self.listener.close()


@pytest.fixture
def instances():
    made = []

    def make(name, dying):
        instance = Executions(name, dying)
        made.append(instance)
        return instance

    yield make
    for instance in made:
        instance.stop()


def _send(port: int, method: str, path: str, headers=None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            method, path, body=b"x" if method == "POST" else None, headers={"Host": "pay.test"} | (headers or {})
        )
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


def test_only_requests_safe_to_repeat_are_sent_again(router, instances):
    proxy = router()
    healthy, dying = instances("healthy", False), instances("dying", True)
    proxy.put_route("pay", {"hosts": ["pay.test"], "idempotency_header": "Idempotency-Key"})
    proxy.put_instance("pay", "node1", "healthy", healthy.port)
    proxy.put_instance("pay", "node2", "dying", dying.port)
    proxy.wait_rendered(lambda text: "server node2-dying" in text, what="both instances")
    wait_for(lambda: len(proxy.servers("app_pay")) == 2, 10, what="the reload")

    outcomes = {}
    for number in range(8):
        outcomes[("GET", number)] = _send(proxy.http_port, "GET", f"/get/{number}")
    for number in range(8):
        outcomes[("POST", number)] = _send(proxy.http_port, "POST", f"/post/{number}")
    for number in range(8):
        keyed = {"Idempotency-Key": f"k{number}"}
        outcomes[("KEYED", number)] = _send(proxy.http_port, "POST", f"/keyed/{number}", keyed)

    for number in range(8):
        post = f"/post/{number}"
        executions = healthy.count("POST", post) + dying.count("POST", post)
        assert executions == 1, f"POST {post} ran {executions} times"
        # The client sees what happened: 200 from the healthy instance, 502 when the dying one took it.
        assert outcomes[("POST", number)] == (200 if healthy.count("POST", post) else 502)
        assert outcomes[("GET", number)] == 200, f"GET /get/{number}: {outcomes[('GET', number)]}"
        assert outcomes[("KEYED", number)] == 200, f"keyed POST {number}: {outcomes[('KEYED', number)]}"
    # Round robin over two instances: the dying one took some POSTs, and some GETs that were then sent again.
    assert any(status == 502 for (kind, _n), status in outcomes.items() if kind == "POST")
    assert any(dying.count("GET", f"/get/{number}") for number in range(8))
    assert any(dying.count("POST", f"/keyed/{number}") for number in range(8))
