"""An HTTP proxy in front of a Consul agent that records every request, so a test counts writes on the wire."""

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WRITE_METHODS = {"PUT", "POST", "DELETE", "PATCH"}


class CountingProxy:
    """Forwards HTTP requests to Consul and records (method, path) of each one."""

    def __init__(self, target_url):
        self.target_url = target_url
        self.requests = []
        # Fault injection: answer writes 200 without passing them on, as a Consul that acknowledged and then lost them.
        self.swallow_writes = False
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.requests.append((self.command, self.path))
                if proxy.swallow_writes and self.command in WRITE_METHODS:
                    self._answer(200, b"true")
                    return
                headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
                request = urllib.request.Request(
                    proxy.target_url + self.path, data=body, method=self.command, headers=headers
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, payload = response.status, response.read()
                except urllib.error.HTTPError as error:
                    status, payload = error.code, error.read()
                self._answer(status, payload)

            def _answer(self, status, payload):
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_DELETE = do_POST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.server.server_address[1]}"

    def writes(self):
        return [request for request in self.requests if request[0] in WRITE_METHODS]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
