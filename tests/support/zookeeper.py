"""A real ZooKeeper 3.8 on loopback, for tests.

It runs Debian's ZooKeeper jars (installed by tests/tools/install-zookeeper.sh)
as a standalone server of its own: its own loopback port, data directory and
log, and no admin web server. Stopping it and starting it again keeps the port
and the data, so a test can take ZooKeeper away and bring it back. Its session
timeouts are short (1-30s; 2s ticks would make a test of session expiry wait
at least 4s), everything else is ZooKeeper's default.
"""

import shutil
import socket
import subprocess
from pathlib import Path

from support.consul_agent import free_port
from support.waiting import wait_for

JARS = ("/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-simple.jar")
MAIN_CLASS = "org.apache.zookeeper.server.ZooKeeperServerMain"
TICK_MS = 500


def java_binary() -> str:
    found = shutil.which("java")
    missing = [jar for jar in JARS if not Path(jar).is_file()]
    if not found or missing:
        raise RuntimeError(
            f"no ZooKeeper to run (java: {found or 'missing'}, missing jars: {missing or 'none'}):"
            " run `make tools` (tests/tools/install-zookeeper.sh)"
        )
    return found


class ZooKeeperServer:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / "zookeeper.log"

    @property
    def hosts(self) -> str:
        """The connection string a client is given."""
        return f"127.0.0.1:{self.port}"

    def _config(self) -> str:
        settings = {
            "tickTime": TICK_MS,
            "dataDir": self.workdir / "data",
            "clientPort": self.port,
            "clientPortAddress": "127.0.0.1",
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "srvr",
            "minSessionTimeout": 2 * TICK_MS,
            "maxSessionTimeout": 30_000,
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def start(self, timeout: float = 30) -> None:
        config_path = self.workdir / "zoo.cfg"
        config_path.write_text(self._config())
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [
                java_binary(),
                "-Xmx128m",
                "-XX:+UseSerialGC",
                # The C1 compiler alone starts the server in well under a second.
                "-XX:TieredStopAtLevel=1",
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
                "-cp",
                ":".join(JARS),
                MAIN_CLASS,
                str(config_path),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._serving, timeout, 0.05, f"ZooKeeper to serve on {self.hosts}", self.log_tail)

    def _serving(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"ZooKeeper exited with {self.process.returncode}: {self.log_tail()}")
        try:
            return "Mode: standalone" in self.four_letter_word("srvr")
        except OSError:
            return False

    def four_letter_word(self, word: str) -> str:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(word.encode())
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else "(no log)"
