"""The Consul client's failures and stale reads, against a loopback server that misbehaves on purpose.

A real Consul does not truncate its answers, hang up mid-answer or report a
server that lost the leader for seconds; this scripted server does, so every
test here goes through the real client and the real socket stack.
"""

from __future__ import annotations

import socket
import threading

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul import (
    ConsulClient,
    ConsulError,
    Response,
    parse_settings,
    too_stale,
)


class ScriptedServer:
    """Answers each request with the next of `answers` (bytes sent as they are, or None to hang up at once)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while self.answers:
            try:
                connection, _peer = self.listener.accept()
            except OSError:
                return
            with connection:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    head += chunk
                self.requests.append(head.split(b" ", 2)[1].decode())
                answer = self.answers.pop(0)
                if answer == "hold":
                    threading.Event().wait(2)
                elif answer is not None:
                    connection.sendall(answer)

    def close(self):
        self.listener.close()


def http_answer(body: bytes, headers: dict | None = None, length: int | None = None) -> bytes:
    lines = ["HTTP/1.1 200 OK", "Content-Type: application/json", f"Content-Length: {length or len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture
def scripted():
    servers = []

    def make(*answers, max_stale=0.0):
        server = ScriptedServer(answers)
        servers.append(server)
        return ConsulClient(parse_settings({"address": server.address, "timeout": 0.5}), max_stale=max_stale), server

    yield make
    for server in servers:
        server.close()


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (http_answer(b'[{"Key": "a"}]', length=100), "IncompleteRead"),  # truncated body
        (None, "RemoteDisconnected"),  # hung up before answering
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "IncompleteRead"),  # no body at all
        (b"garbage\r\n\r\n", "BadStatusLine"),
        ("hold", "timed out"),  # silent past the timeout
    ],
    ids=["truncated", "hung-up", "no-body", "bad-status", "timeout"],
)
def test_every_transport_failure_is_a_consul_error(scripted, answer, words):
    client, _server = scripted(answer)
    with pytest.raises(ConsulError) as caught:
        client.get("/v1/kv/a")
    assert caught.value.status is None
    assert f"consul at http://{client.settings.address} unreachable" in str(caught.value)
    assert words in str(caught.value)


def test_malformed_json_is_a_consul_error(scripted):
    client, _server = scripted(http_answer(b"[{not json"))
    with pytest.raises(ConsulError, match="malformed JSON"):
        client.get("/v1/kv/a").json()


def test_without_max_stale_every_read_goes_to_the_leader(scripted):
    client, server = scripted(http_answer(b"[]", {"X-Consul-LastContact": "9000"}))
    client.get("/v1/kv/a", {"index": "5"})
    assert server.requests == ["/v1/kv/a?index=5"]


def test_a_stale_read_within_max_stale_is_used(scripted):
    client, server = scripted(http_answer(b"[1]", {"X-Consul-LastContact": "1500", "X-Consul-Index": "7"}), max_stale=2)
    answer = client.get("/v1/kv/a")
    assert server.requests == ["/v1/kv/a?stale="]
    assert (answer.body, answer.index, answer.last_contact) == (b"[1]", 7, 1.5)


def test_a_read_staler_than_max_stale_is_asked_again_of_the_leader(scripted):
    client, server = scripted(
        http_answer(b"[1]", {"X-Consul-LastContact": "2500", "X-Consul-Index": "7"}),
        http_answer(b"[2]", {"X-Consul-LastContact": "0", "X-Consul-Index": "9"}),
        max_stale=2,
    )
    answer = client.get("/v1/kv/a", {"index": "5"})
    assert server.requests == ["/v1/kv/a?index=5&stale=", "/v1/kv/a?index=5"]
    assert (answer.body, answer.index) == (b"[2]", 9)


@pytest.mark.parametrize(("last_contact", "max_stale", "stale"), [(0, 2, False), (2, 2, False), (2.001, 2, True)])
def test_too_stale_compares_last_contact_with_max_stale(last_contact, max_stale, stale):
    assert too_stale(Response(200, b"", 1, last_contact), max_stale) is stale
