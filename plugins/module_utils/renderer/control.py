# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The control socket: operator actions that change what goes live, for root only.

POST /v1/accept-drop/<template> (the max_drop override) is taken here, on a
Unix socket in the state directory, never on the TCP status endpoint, which
anything on the host can reach. The kernel checks who connects: the socket
is 0600 and owned by the daemon's user (root under the role), in a directory
that is 0700. So no token has to be generated, stored, rotated, or kept out
of logs, shell histories and process lists:

    sudo curl --unix-socket /var/lib/dockyard/renderer/control.sock -X POST http://localhost/v1/accept-drop/haproxy
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler
from socketserver import ThreadingMixIn, UnixStreamServer

SOCKET_NAME = "control.sock"
ACCEPT_DROP = "/v1/accept-drop/"


def socket_path(state_dir: str) -> str:
    return os.path.join(state_dir, SOCKET_NAME)


class ControlError(OSError):
    """The control socket cannot be made (its path holds something else, or the directory is unusable)."""


def _remove_stale_socket(path: str) -> None:
    """A socket left by an earlier run is removed; anything else at the path is an error, never deleted."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(status.st_mode):
        raise ControlError(f"control socket: {path} exists and is not a socket; remove it")
    os.unlink(path)


class _Server(ThreadingMixIn, UnixStreamServer):
    daemon_threads = True


def _handler(runner):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # the renderer's own log is enough
            pass

        def address_string(self):  # a Unix socket's peer has no address
            return "control socket"

        def _send(self, code: int, body: str) -> None:
            payload = body.encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self):
            if not self.path.startswith(ACCEPT_DROP):
                self._send(404, '{"error": "not found"}\n')
            elif runner.accept_drop(self.path[len(ACCEPT_DROP) :]):
                self._send(200, '{"accepted": true}\n')
            else:
                self._send(404, '{"error": "no such template"}\n')

    return Handler


class ControlServer:
    """HTTP on a 0600 Unix socket at <state_dir>/control.sock, serving POST /v1/accept-drop/<template>."""

    def __init__(self, runner, state_dir: str):
        self.path = socket_path(state_dir)
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        _remove_stale_socket(self.path)
        self.server = _Server(self.path, _handler(runner), bind_and_activate=False)
        try:
            # Made 0600 between bind and listen: no connection is possible before its mode is right.
            self.server.server_bind()
            os.chmod(self.path, 0o600)
            self.server.server_activate()
        except OSError:
            self.server.server_close()
            raise
        self.thread = threading.Thread(target=self.server.serve_forever, name="control", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                os.unlink(self.path)
