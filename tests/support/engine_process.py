"""The Dockyard engines (renderer, registrator) as real processes run from the checkout."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

COLLECTIONS = Path(__file__).parents[2] / ".cache" / "collections"
ENGINES = "ansible_collections.dockyard.platform.plugins.module_utils"
RENDERER_CLI = f"{ENGINES}.renderer.cli"
REGISTRATOR_CLI = f"{ENGINES}.registrator.cli"


class EngineProcess:
    """One engine process (`python -m <cli> --config FILE --mode MODE`) with its config file and log."""

    def __init__(self, workdir: Path, name: str, cli: str, config: dict, mode: str = "daemon", extra=(), env=None):
        self.config = config
        self.config_path = workdir / f"{name}.json"
        self.config_path.write_text(json.dumps(config))
        self.log_path = workdir / f"{name}.log"
        self.cli = cli
        self.mode = mode
        self.extra = list(extra)
        self.env = {**os.environ, "PYTHONPATH": str(COLLECTIONS), **(env or {})}
        self.process = None

    def argv(self, mode: str | None = None) -> list:
        return [sys.executable, "-m", self.cli, "--config", str(self.config_path), "--mode", mode or self.mode]

    def start(self):
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv() + self.extra, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM and wait (SIGKILL past timeout); returns the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode if self.process else 0

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as when the node or the daemon dies."""
        if self.alive():
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def log_lines(self, *words) -> list:
        """The log's lines that hold every one of words."""
        return [line for line in self.log().splitlines() if all(word in line for word in words)]
