"""Helpers for the renderer's integration tests: run the real daemon as a process."""

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from support.consul_agent import free_port
from support.waiting import wait_for

ROOT = Path(__file__).parents[3]
COLLECTIONS = ROOT / ".cache" / "collections"
CLI = "ansible_collections.dockyard.platform.plugins.module_utils.renderer.cli"


class Renderer:
    """One renderer process (daemon, exec, once or dry mode) with its config and log."""

    def __init__(self, workdir: Path, config: dict, mode: str = "daemon", child=None, env=None):
        self.workdir = workdir
        self.status_port = free_port()
        config.setdefault("status", {"port": self.status_port})
        config.setdefault("log_level", "debug")
        self.config_path = workdir / f"renderer-{mode}.json"
        self.config_path.write_text(json.dumps(config))
        self.log_path = workdir / f"renderer-{mode}.log"
        self.argv = [sys.executable, "-m", CLI, "--config", str(self.config_path), "--mode", mode]
        if child:
            self.argv += ["--", *child]
        self.env = {**os.environ, "PYTHONPATH": str(COLLECTIONS), **(env or {})}
        self.process = None

    def start(self):
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        return self

    def run(self, timeout: float = 30):
        """Runs to completion (once, dry, validate); returns the CompletedProcess."""
        return subprocess.run(self.argv, capture_output=True, text=True, env=self.env, timeout=timeout, check=False)

    def status(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/v1/status", timeout=5) as answer:
            return json.loads(answer.read())

    def template(self, name: str) -> dict:
        return next(item for item in self.status()["templates"] if item["name"] == name)

    def wait_ready(self, timeout: float = 15):
        def settled():
            try:
                return all(item["settled"] for item in self.status()["templates"])
            except OSError:
                return False

        wait_for(settled, timeout, 0.05, "the renderer's first render")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum):
        self.process.send_signal(signum)

    def stop(self, timeout: float = 10) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode if self.process else 0

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def consul_settings(agent) -> dict:
    return {"address": agent.address}
