"""The lab's set-up scripts fail with one clear sentence, not a traceback, and the tool fetchers exit 0."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
NOBODY = 65534


@pytest.fixture
def readable_by_nobody():
    """A directory user nobody can enter: /tmp itself is world-searchable, the checkout may not be.

    pytest's tmp_path (and a checkout under a `mktemp -d` directory or root's home) sits below a 0700 directory.
    """
    directory = Path(tempfile.mkdtemp(prefix="dockyard-lab-scripts-", dir="/tmp"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_no_engine_and_no_root_says_what_is_missing(readable_by_nobody):
    script = readable_by_nobody / "ensure-engine.sh"
    shutil.copyfile(ROOT / "lab/ensure-engine.sh", script)
    script.chmod(0o644)
    result = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "bash", str(script)],
        env={"PATH": os.environ["PATH"], "DOCKER_HOST": "unix:///nonexistent/docker.sock"},
        cwd=readable_by_nobody,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("No Docker engine answers and this is not root")


@pytest.mark.parametrize(("script", "tool"), [("fetch-consul.sh", "consul"), ("fetch-haproxy.sh", "haproxy")])
def test_the_tool_fetchers_print_the_version_line_without_dying_of_sigpipe(tmp_path, script, tool):
    """The last line of each fetcher prints the tool's version under `set -euo pipefail`.

    A `| head -1` there ends with SIGPIPE (exit 141, and `make tools` with it) whenever the tool writes again after
    head has gone; the fake tool below always does.
    """
    fake = tmp_path / tool
    fake.write_text("#!/bin/sh\necho 'version line'\nsleep 0.3\necho 'more'\necho 'and more'\n")
    fake.chmod(0o755)
    last = [line for line in (ROOT / "tests/tools" / script).read_text().splitlines() if line.strip()][-1]
    assert tool in last
    result = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\ndest=$1\n{last}", "bash", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "version line\n"
