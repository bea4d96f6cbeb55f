"""Fixtures for the renderer's integration tests."""

import pytest
from renderer_helpers import Renderer


@pytest.fixture
def renderer(tmp_path, failure_logs):
    """Factory: renderer(config, mode=..., child=...) started (daemon/exec) and stopped after the test."""
    started = []

    def make(config: dict, mode: str = "daemon", child=None, env=None, start=True):
        process = Renderer(tmp_path, config, mode, child, env)
        if start and mode in ("daemon", "exec"):
            process.start()
            started.append(process)
            failure_logs.append((f"renderer log {process.log_path}", process.log))
        return process

    yield make
    for process in started:
        process.stop()
