"""Fixtures for the renderer's integration tests."""

import sys

import pytest
from renderer_helpers import Renderer


@pytest.fixture
def renderer(tmp_path, request):
    """Factory: renderer(config, mode=..., child=...) started (daemon/exec) and stopped after the test."""
    started = []

    def make(config: dict, mode: str = "daemon", child=None, env=None, start=True):
        process = Renderer(tmp_path, config, mode, child, env)
        if start and mode in ("daemon", "exec"):
            process.start()
            started.append(process)
        return process

    yield make
    for process in started:
        process.stop()
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            sys.stderr.write(f"--- renderer log {process.log_path}\n{process.log()[-5000:]}\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)
