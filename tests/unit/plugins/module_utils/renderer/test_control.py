import http.client
import io
import json
import os
import socket
import stat
import urllib.error
import urllib.request

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.renderer import config as configuration
from ansible_collections.dockyard.platform.plugins.module_utils.renderer import control
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.runner import Runner
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.status import StatusServer


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket, as `curl --unix-socket` does it."""

    def __init__(self, path: str):
        super().__init__("localhost", timeout=5)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self.socket_path)


def post(path: str, url: str) -> tuple:
    connection = UnixHTTPConnection(path)
    try:
        connection.request("POST", url)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


@pytest.fixture
def runner(tmp_path):
    raw = {"templates": [{"name": "haproxy", "destination": str(tmp_path / "out"), "contents": "", "max_drop": 0.5}]}
    return Runner(configuration.parse(raw, {}), client=object(), stdout=io.StringIO())


def test_accept_drop_is_taken_on_the_root_only_control_socket(tmp_path, runner):
    state_dir = tmp_path / "state"
    server = control.ControlServer(runner, str(state_dir))
    server.start()
    try:
        assert server.path == str(state_dir / "control.sock")
        assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700
        assert post(server.path, "/v1/accept-drop/nope") == (404, {"error": "no such template"})
        assert not runner.states[0].accept_drop
        assert post(server.path, "/v1/accept-drop/haproxy") == (200, {"accepted": True})
        assert runner.states[0].accept_drop
    finally:
        server.stop()
    assert not os.path.exists(server.path)


def test_the_tcp_status_endpoint_refuses_accept_drop(runner):
    server = StatusServer(runner, "127.0.0.1", 0)
    server.start()
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/v1/accept-drop/haproxy", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 403
        assert "control socket" in json.loads(refused.value.read())["error"]
    finally:
        server.stop()
    assert not runner.states[0].accept_drop


def test_a_stale_socket_is_replaced_and_anything_else_at_its_path_is_kept(tmp_path, runner):
    path = control.socket_path(str(tmp_path))
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)  # as a killed daemon leaves it
    stale.close()
    server = control.ControlServer(runner, str(tmp_path))
    server.start()
    server.stop()
    with open(path, "w") as handle:
        handle.write("not a socket\n")
    with pytest.raises(control.ControlError, match="exists and is not a socket"):
        control.ControlServer(runner, str(tmp_path))
    with open(path) as handle:
        assert handle.read() == "not a socket\n"
