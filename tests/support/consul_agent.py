"""A real Consul server agent on loopback, for tests.

It runs as a one-node server with a data directory (not -dev), so a test can
stop it and start it again on the same ports without losing its data.
"""

import json
import os
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from support.waiting import wait_for

MASTER_TOKEN = "00000000-0000-4000-8000-00000000beef"


# Each test process hands out ports from a block of its own, one after another, below the
# kernel's ephemeral range (32768 and up). So a port is never handed out twice: not by this
# process (the kernel may give a just-closed port out again, and two listeners of one test
# then collide), not by another pytest-xdist worker, and not by the kernel to a connection.
PORT_BLOCK_SIZE = 2000
FIRST_PORT_BLOCK = 12000


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


BLOCK_START = FIRST_PORT_BLOCK + _worker_index() * PORT_BLOCK_SIZE
UNTRIED_PORTS = iter(range(BLOCK_START, BLOCK_START + PORT_BLOCK_SIZE))


def free_port() -> int:
    """A loopback port nothing listens on now and that no test process has handed out before."""
    for port in UNTRIED_PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"this test process used all {PORT_BLOCK_SIZE} ports of its block from {BLOCK_START}")


def consul_binary() -> str:
    found = shutil.which("consul")
    if not found:
        raise RuntimeError("no consul binary on PATH: run `make tools` (tests/tools/fetch-consul.sh)")
    return found


class ConsulAgent:
    def __init__(self, workdir: Path, acl: bool = False):
        self.workdir = workdir
        self.acl = acl
        self.ports = {name: free_port() for name in ("http", "serf_lan", "serf_wan", "server")}
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / "consul.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ports['http']}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def _config(self) -> dict:
        config = {
            "server": True,
            "bootstrap_expect": 1,
            "data_dir": str(self.workdir / "data"),
            "bind_addr": "127.0.0.1",
            "client_addr": "127.0.0.1",
            "ports": {**self.ports, "dns": -1, "grpc": -1},
            "log_level": "warn",
            "disable_update_check": True,
            "performance": {"raft_multiplier": 1},
            # Lets a test see a session expire in seconds (Consul's floor is 10 s).
            "session_ttl_min": "1s",
        }
        if self.acl:
            config["acl"] = {
                "enabled": True,
                "default_policy": "deny",
                "enable_token_persistence": False,
                "tokens": {"master": MASTER_TOKEN, "agent": MASTER_TOKEN},
            }
        return config

    def start(self, timeout: float = 30) -> None:
        config_path = self.workdir / "consul.json"
        config_path.write_text(json.dumps(self._config()))
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [consul_binary(), "agent", f"-config-file={config_path}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._wait_for_leader(timeout)

    def _wait_for_leader(self, timeout: float) -> None:
        wait_for(self._leader_elected, timeout, 0.2, "consul to elect a leader")

    def _leader_elected(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"consul exited: {self.log_path.read_text()[-2000:]}")
        try:
            # A KV read succeeds only once there is a leader to serve it.
            self.request("GET", "/v1/kv/?keys")
        except urllib.error.HTTPError as error:
            return error.code == 404
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def request(self, method: str, path: str, body: bytes | None = None, token: str | None = None, raw: bool = False):
        """Sends one HTTP request and returns (decoded JSON, or bytes when raw, and the headers)."""
        headers = {}
        if token or self.acl:
            headers["X-Consul-Token"] = token or MASTER_TOKEN
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=10) as response:
            payload = response.read()
            if raw:
                return payload, response.headers
            return (json.loads(payload) if payload else None), response.headers

    def put(self, key: str, value: str | bytes) -> None:
        data = value.encode() if isinstance(value, str) else value
        self.request("PUT", f"/v1/kv/{key}", data)

    def get(self, key: str) -> bytes | None:
        """Returns the raw value of a key, or None when it does not exist."""
        try:
            value, _headers = self.request("GET", f"/v1/kv/{key}?raw", raw=True)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise
        return value

    def keys(self, prefix: str = "") -> list[str]:
        try:
            found, _headers = self.request("GET", f"/v1/kv/{prefix}?keys")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return []
            raise
        return found

    def delete_tree(self, prefix: str = "") -> None:
        self.request("DELETE", f"/v1/kv/{prefix}?recurse")

    def environment(self) -> dict[str, str]:
        """CONSUL_HTTP_* variables that point a client at this agent."""
        env = {"CONSUL_HTTP_ADDR": self.address}
        if self.acl:
            env["CONSUL_HTTP_TOKEN"] = MASTER_TOKEN
        return {**os.environ, **env}
