"""The unit tests' one fake Consul: an in-memory KV store behind a real HTTP server on loopback.

It speaks the part of Consul's HTTP API that Dockyard's client uses (KV reads
with recurse, writes, deletes, transactions with check-and-set, X-Consul-Index,
ACL tokens), so the modules and the daemons' code are tested through the one
real client (plugins/module_utils/daemon/consul.py), never a stand-in for it.
tests/support/consul_agent.py starts a real agent for the integration tests.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul import ConsulClient, parse_settings


class FakeConsul:
    """kv maps each key to [value bytes, ModifyIndex, CreateIndex]; requests records (method, path, token)."""

    def __init__(self, data=None, token=None):
        self.lock = threading.Lock()
        self.index = 10
        self.kv = {}
        self.transactions = []  # the operations of every transaction, applied or not
        self.requests = []
        self.token = token  # when set, every request must carry it (as X-Consul-Token)
        self.denied = []  # fnmatch patterns of keys the token may not write
        for key, value in (data or {}).items():
            self.set(key, value)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # -- for tests ---------------------------------------------------------------------
    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def client(self, **settings) -> ConsulClient:
        """The real client, pointed at this fake."""
        return ConsulClient(parse_settings({"address": self.address, **settings}))

    def set(self, key: str, value) -> None:
        with self.lock:
            self.index += 1
            raw = value.encode() if isinstance(value, str) else value
            created = self.kv[key][2] if key in self.kv else self.index
            self.kv[key] = [raw, self.index, created]

    def values(self) -> dict:
        with self.lock:
            return {key: entry[0].decode() for key, entry in self.kv.items()}

    def writes(self) -> list:
        return [request for request in self.requests if request[0] in ("PUT", "DELETE")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the API -----------------------------------------------------------------------
    def entries(self, key: str, recurse: bool) -> list:
        found = sorted(item for item in self.kv.items() if (item[0].startswith(key) if recurse else item[0] == key))
        return [
            {
                "Key": name,
                "Value": base64.b64encode(raw).decode() if raw else None,
                "ModifyIndex": modified,
                "CreateIndex": created,
                "Flags": 0,
            }
            for name, (raw, modified, created) in found
        ]

    def transaction(self, operations: list) -> tuple:
        """(status, answer) for a transaction: all operations apply, or none and 409 says which failed."""
        self.transactions.append(operations)
        errors = []
        for position, operation in enumerate(operations):
            kv = operation["KV"]
            current = self.kv.get(kv["Key"])
            if any(fnmatch.fnmatchcase(kv["Key"], pattern) for pattern in self.denied):
                errors.append({"OpIndex": position, "What": "Permission denied"})
            elif (current[1] if current else 0) != kv.get("Index") and (
                kv["Verb"] == "cas" or (kv["Verb"] == "delete-cas" and current)  # deleting a key already gone succeeds
            ):
                errors.append({"OpIndex": position, "What": f'failed key "{kv["Key"]}": index is stale'})
        if errors:
            return 409, {"Errors": errors, "Results": None}
        self.index += 1
        results = []
        for operation in operations:
            kv = operation["KV"]
            if kv["Verb"] in ("set", "cas"):
                created = self.kv[kv["Key"]][2] if kv["Key"] in self.kv else self.index
                self.kv[kv["Key"]] = [base64.b64decode(kv.get("Value") or ""), self.index, created]
                results.append({"KV": {"Key": kv["Key"], "ModifyIndex": self.index}})
            else:
                self.kv.pop(kv["Key"], None)
        return 200, {"Results": results, "Errors": None}


def _handler(fake: FakeConsul):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args):
            pass

        def _answer(self, status: int, document=None) -> None:
            payload = b"" if document is None else json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Consul-Index", str(fake.index))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _handle(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fake.requests.append((self.command, self.path, self.headers.get("X-Consul-Token")))
            if fake.token is not None and self.headers.get("X-Consul-Token") != fake.token:
                self.send_response(403)
                self.send_header("Content-Length", "13")
                self.end_headers()
                self.wfile.write(b"ACL not found")
                return
            with fake.lock:
                if url.path == "/v1/txn" and self.command == "PUT":
                    self._answer(*fake.transaction(json.loads(body)))
                    return
                if not url.path.startswith("/v1/kv/"):
                    self._answer(404)
                    return
                key = urllib.parse.unquote(url.path[len("/v1/kv/") :])
                if self.command == "GET":
                    entries = fake.entries(key, "recurse" in query)
                    self._answer(200, entries) if entries else self._answer(404)
                elif self.command == "PUT":
                    fake.index += 1
                    created = fake.kv[key][2] if key in fake.kv else fake.index
                    fake.kv[key] = [body, fake.index, created]
                    self._answer(200, True)
                elif self.command == "DELETE":
                    fake.index += 1
                    fake.kv.pop(key, None)
                    self._answer(200, True)

        do_GET = do_PUT = do_DELETE = _handle

    return Handler
