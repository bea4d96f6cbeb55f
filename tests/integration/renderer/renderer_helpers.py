"""Helpers for the renderer's integration tests: run the real daemon as a process."""

import json
import urllib.request
from pathlib import Path

from support.consul_agent import free_port
from support.engine_process import RENDERER_CLI, EngineProcess
from support.waiting import wait_for


class Renderer(EngineProcess):
    """One renderer process (daemon, exec, once or dry mode) with its config and log."""

    def __init__(self, workdir: Path, config: dict, mode: str = "daemon", child=None, env=None):
        self.status_port = free_port()
        config.setdefault("status", {"port": self.status_port})
        config.setdefault("log_level", "debug")
        extra = ["--", *child] if child else []
        super().__init__(workdir, f"renderer-{mode}", RENDERER_CLI, config, mode, extra, env)

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


def consul_settings(agent) -> dict:
    return {"address": agent.address}
