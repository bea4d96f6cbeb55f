"""Helpers for the router's integration tests: the role's template as Ansible renders it, a real
HAProxy in master-worker mode, the real renderer daemon, HTTP backends and a load generator, all on loopback."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from support.consul_agent import free_port
from support.engine_process import RENDERER_CLI, EngineProcess
from support.waiting import wait_for

ROOT = Path(__file__).parents[3]
ROLE = ROOT / "roles" / "haproxy"
# The role's confirmed-reload helper, run as the renderer runs it on a router (python3, no shebang).
RELOAD_HELPER = ROLE / "files" / "haproxy_reload.py"

RENDER_PLAYBOOK = """
- name: Render the haproxy role's template as the role does
  hosts: localhost
  gather_facts: false
  vars_files:
    - "{{ role_dir }}/defaults/main.yml"
    - "{{ role_dir }}/vars/main.yml"
  tasks:
    - name: Render
      ansible.builtin.template:
        src: "{{ role_dir }}/templates/haproxy.cfg.j2"
        dest: "{{ dest }}"
        mode: "0644"
"""


def haproxy_binary() -> str:
    found = shutil.which("haproxy")
    if not found:
        raise RuntimeError("no haproxy on PATH: run tests/tools/fetch-haproxy.sh .cache/bin")
    return found


def render_role_template(workdir: Path, dest: Path, **variables) -> Path:
    """Runs Ansible's template module on roles/haproxy/templates/haproxy.cfg.j2 with the role's
    defaults and vars, overridden by variables (as extra vars)."""
    playbook = workdir / "render-template.yml"
    playbook.write_text(RENDER_PLAYBOOK)
    extra = {
        "role_dir": str(ROLE),
        "dest": str(dest),
        "ansible_python_interpreter": sys.executable,
        **variables,
    }
    extra_path = workdir / f"{dest.name}.vars.json"
    extra_path.write_text(json.dumps(extra))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook), "-e", f"@{extra_path}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return dest


def check_config(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([haproxy_binary(), "-c", "-q", "-f", str(path)], capture_output=True, text=True, check=False)


class Router:
    """The role's configuration for loopback: template (for the renderer), bootstrap file, HAProxy, renderer."""

    def __init__(self, workdir: Path, consul, prefix: str, confirm_reload: bool = False, **variables):
        self.workdir = workdir
        # True: the renderer's command is the role's helper wrapped around the reload, as on a router.
        self.confirm_reload = confirm_reload
        self.consul = consul
        self.prefix = prefix
        self.http_port = free_port()
        self.management_port = free_port()
        self.variables = {
            "haproxy_bind_address": "127.0.0.1",
            "haproxy_http_port": self.http_port,
            "haproxy_https_port": free_port(),
            "haproxy_management_address": "127.0.0.1",
            "haproxy_management_port": self.management_port,
            "haproxy_kv_prefix": prefix,
            # Loopback tests run HAProxy unprivileged, without chroot or a log.
            "_haproxy_chroot": "",
            "_haproxy_user": "",
            "haproxy_log_target": "off",
            # Needs about twice as many file descriptors; the test machine's limit may be low.
            "haproxy_maxconn": 2000,
            # Tests take free ports from the kernel's ephemeral range as service ports.
            "haproxy_service_port_range": {"first": 1024, "last": 65535},
            # The reload helper saves the server state here (the role's default is under the chroot).
            "haproxy_server_state_file": str(workdir / "server-state"),
            **variables,
        }
        self.live = workdir / "dockyard.cfg"
        self.template = workdir / "haproxy.ctmpl"
        self.pidfile = workdir / "haproxy.pid"
        self.master_socket = workdir / "master.sock"
        self.haproxy = None
        self.renderer = None
        self.haproxy_log = workdir / "haproxy.log"
        self.status_port = free_port()

    # -- set-up --------------------------------------------------------------------
    def render_templates(self) -> None:
        render_role_template(self.workdir, self.template, **self.variables)
        render_role_template(self.workdir, self.live, _haproxy_bootstrap=True, **self.variables)

    def reload_command(self) -> str:
        # What Debian's haproxy.service does on `systemctl reload haproxy`: check, then USR2 to the master.
        plain = f"{haproxy_binary()} -c -q -f {self.live} && kill -USR2 $(cat {self.pidfile})"
        if not self.confirm_reload:
            return plain
        return shlex.join(self.helper_argv(["/bin/sh", "-c", plain]))

    def helper_argv(self, command: list, timeout: float = 15) -> list:
        """The role's reload helper on this router's master socket, around command."""
        helper = [sys.executable, "-I", str(RELOAD_HELPER), "--socket", str(self.master_socket)]
        if self.variables["haproxy_server_state_file"]:
            helper += ["--state-file", self.variables["haproxy_server_state_file"], "--config", str(self.live)]
        return [*helper, "--timeout", str(timeout), "--", *command]

    def start_haproxy(self) -> None:
        checked = check_config(self.live)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        with self.haproxy_log.open("ab") as log:
            self.haproxy = subprocess.Popen(
                [haproxy_binary(), "-W", "-S", str(self.master_socket), "-f", str(self.live), "-p", str(self.pidfile)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self.management_up, 10, what="HAProxy's management port")

    def renderer_config(self) -> dict:
        return {
            "consul": {"address": self.consul.address},
            "status": {"port": self.status_port},
            "log_level": "info",
            "templates": [
                {
                    "name": "haproxy",
                    "source": str(self.template),
                    "destination": str(self.live),
                    "check": f"{haproxy_binary()} -c -q -f %s",
                    "command": self.reload_command(),
                    "wait": {"min": "200ms", "max": "1s"},
                    "max_drop": "100%",
                }
            ],
        }

    def start_renderer(self) -> None:
        self.renderer = EngineProcess(self.workdir, "renderer", RENDERER_CLI, self.renderer_config()).start()
        wait_for(self._settled, 20, what="the renderer's first render")

    def start(self) -> Router:
        self.render_templates()
        self.start_haproxy()
        self.start_renderer()
        return self

    def stop(self) -> None:
        if self.renderer is not None:
            self.renderer.stop(10)
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.send_signal(signal.SIGTERM)
            try:
                self.haproxy.wait(10)
            except subprocess.TimeoutExpired:
                self.haproxy.kill()
                self.haproxy.wait()

    # -- observation ---------------------------------------------------------------
    def status(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/v1/status", timeout=5) as answer:
            return json.loads(answer.read())["templates"][0]

    def _settled(self) -> bool:
        try:
            return self.status()["settled"]
        except OSError:
            return False

    def management_up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.management_port), timeout=1):
                return True
        except OSError:
            return False

    def stats(self) -> list[dict]:
        """The stats page's CSV as a list of rows."""
        url = f"http://127.0.0.1:{self.management_port}/stats;csv"
        with urllib.request.urlopen(url, timeout=5) as answer:
            lines = answer.read().decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        return [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]

    def servers(self, backend: str) -> dict:
        return {
            row["svname"]: row
            for row in self.stats()
            if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def master(self, command: str, timeout: float = 10) -> str:
        """A command on the master CLI; retried while the master re-executes (its socket is then closed)."""
        answer = wait_for(lambda: self._master_once(command), timeout, 0.1, f"the master CLI to take {command!r}")
        return answer[0]

    def _master_once(self, command: str) -> list[str] | None:
        """[the master's answer], or None while its socket is closed."""
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(5)
                sock.connect(str(self.master_socket))
                sock.sendall(command.encode() + b"\n")
                sock.shutdown(socket.SHUT_WR)
                chunks = []
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
        except (ConnectionRefusedError, FileNotFoundError):
            return None
        return [b"".join(chunks).decode()]

    def wait_rendered(self, predicate, timeout: float = 10, what: str = "the live configuration"):
        return wait_for(lambda: predicate(self.live.read_text()), timeout, what=what)

    def put_route(self, app: str, spec) -> None:
        self.consul.put(f"{self.prefix}routes/{app}", spec if isinstance(spec, str) else json.dumps(spec))

    def put_instance(self, app: str, node: str, task: str, port: int, track: str = "stable", addr="127.0.0.1"):
        value = {"addr": addr, "port": port, "version": "1", "track": track}
        self.consul.put(f"{self.prefix}instances/{node}/{app}/{task}", json.dumps(value))


# -- backends -------------------------------------------------------------------------
class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # HAProxy closes its health checks' connections with a reset: not an error


class Backend:
    """A small HTTP server on loopback that answers every request with its name."""

    def __init__(self, name: str):
        self.name = name
        self.hits = 0
        self.health_status = 200  # the answer to /health
        self.stopped = False
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                body = backend.name.encode()
                if self.path != "/health":
                    backend.hits += 1
                self.send_response(backend.health_status if self.path == "/health" else 200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stops listening: new connections are refused from now on."""
        if self.stopped:
            return
        self.stopped = True
        self.server.shutdown()
        self.server.server_close()


# -- clients --------------------------------------------------------------------------
def request(port: int, host: str | None = None, path: str = "/", timeout: float = 5) -> tuple:
    """One request on a new connection (Connection: close); returns (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        lines = [f"GET {path} HTTP/1.1", f"Host: {host or '127.0.0.1'}", "Connection: close", "", ""]
        sock.sendall("\r\n".join(lines).encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _separator, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        raise ConnectionError(f"no HTTP response: {data[:200]!r}")
    return int(head.split(b" ", 2)[1]), body.decode(errors="replace")


class Load:
    """Threads that each send requests on new connections in a loop and count failures."""

    def __init__(self, port: int, host: str, threads: int = 4):
        self.port, self.host, self.threads = port, host, threads
        self.ok = 0
        self.failures = []
        self.bodies = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._run, daemon=True) for _number in range(threads)]

    def _run(self):
        while not self._stop.is_set():
            try:
                status, body = request(self.port, self.host)
                failure = None if 200 <= status < 300 else f"HTTP {status}: {body[:80]}"
            except OSError as error:
                failure, body = f"{type(error).__name__}: {error}", ""
            with self._lock:
                if failure:
                    self.failures.append((time.monotonic(), failure))
                else:
                    self.ok += 1
                    self.bodies[body] = self.bodies.get(body, 0) + 1

    def __enter__(self):
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for worker in self._workers:
            worker.join(10)
