"""Load through every router while an app rolls: four kinds of client, every failure counted.

- fresh: a new connection per GET;
- keepalive: one connection per client, reused. When a reused connection turns
  out closed before any byte of the answer (a router reloaded and closed it
  between two requests), the client connects again and sends the GET once more,
  as every HTTP client does for an idempotent request; that is counted as a
  reconnect, not a failure. Any other error is a failure;
- slow: GETs that take the app 2 s, back to back, so some are always in flight;
- post: POSTs, each with an id of its own; the app reports each execution to
  the Counter before answering, so a POST sent twice to the app shows.

A failure is a socket error, a timeout or a status other than 200.
"""

import http.client
import http.server
import threading
import time
import urllib.parse
import uuid
from collections import Counter as Tally
from dataclasses import dataclass, field

KINDS = ("fresh", "keepalive", "slow", "post")
TIMEOUT = 10


class Counter:
    """An HTTP server on the controller that the app's POST handler calls once per execution (GET /?id=...)."""

    def __init__(self):
        self.executions = Tally()
        self._lock = threading.Lock()
        counter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                with counter._lock:
                    for request_id in query.get("id", []):
                        counter.executions[request_id] += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def executed(self) -> dict:
        with self._lock:
            return dict(self.executions)


@dataclass
class Result:
    ok: Tally = field(default_factory=Tally)
    failures: list = field(default_factory=list)  # (kind, router, what)
    reconnects: int = 0
    posts_acknowledged: list = field(default_factory=list)
    bodies: Tally = field(default_factory=Tally)  # the first word of each answer: the version that served

    def summary(self) -> str:
        return (
            f"ok {dict(self.ok)}, {len(self.failures)} failure(s) {self.failures[:10]}, "
            f"{self.reconnects} keep-alive reconnect(s), versions {dict(self.bodies)}"
        )


class Load:
    """Clients of every kind against each router's address on port, asking path; start() then stop() -> Result."""

    def __init__(self, routers: list, port: int, path: str = "/cgi-bin/app"):
        self.routers = routers
        self.port = port
        self.path = path
        self.result = Result()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=getattr(self, f"_{kind}"), args=(router,), daemon=True)
            for router in routers
            for kind in KINDS
        ]

    def start(self):
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Result:
        self._stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT + 5)
        return self.result

    def _ok(self, kind: str, body: bytes) -> None:
        with self._lock:
            self.result.ok[kind] += 1
            self.result.bodies[body.decode(errors="replace").split(" ")[0].strip()] += 1

    def _failed(self, kind: str, router: str, what: str) -> None:
        with self._lock:
            self.result.failures.append((kind, router, what, time.strftime("%H:%M:%S")))

    def send(self, kind: str, router: str, method: str, path: str) -> bool:
        connection = http.client.HTTPConnection(router, self.port, timeout=TIMEOUT)
        try:
            connection.request(method, path, body=b"x" if method == "POST" else None, headers={"Connection": "close"})
            answer = connection.getresponse()
            body = answer.read()
        except (OSError, http.client.HTTPException) as error:
            self._failed(kind, router, f"{type(error).__name__}: {error}")
            return False
        finally:
            connection.close()
        if answer.status != 200:
            self._failed(kind, router, f"status {answer.status}: {body[:80]!r}")
            return False
        self._ok(kind, body)
        return True

    def _fresh(self, router: str) -> None:
        while not self._stop.is_set():
            self.send("fresh", router, "GET", self.path)
            time.sleep(0.05)

    def _slow(self, router: str) -> None:
        while not self._stop.is_set():
            self.send("slow", router, "GET", f"{self.path}?slow")

    def _post(self, router: str) -> None:
        while not self._stop.is_set():
            request_id = uuid.uuid4().hex
            if self.send("post", router, "POST", f"{self.path}?id={request_id}"):
                with self._lock:
                    self.result.posts_acknowledged.append(request_id)
            time.sleep(0.1)

    def _keepalive(self, router: str) -> None:
        connection = None
        while not self._stop.is_set():
            reused = connection is not None
            if connection is None:
                connection = http.client.HTTPConnection(router, self.port, timeout=TIMEOUT)
            try:
                connection.request("GET", self.path)
                answer = connection.getresponse()
                body = answer.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as error:
                connection.close()
                connection = None
                if reused:
                    with self._lock:
                        self.result.reconnects += 1
                else:
                    self._failed("keepalive", router, f"{type(error).__name__}: {error}")
                continue
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                connection = None
                self._failed("keepalive", router, f"{type(error).__name__}: {error}")
                continue
            if answer.status != 200:
                self._failed("keepalive", router, f"status {answer.status}: {body[:80]!r}")
            else:
                self._ok("keepalive", body)
            if answer.will_close:
                connection.close()
                connection = None
            time.sleep(0.05)
        if connection is not None:
            connection.close()
