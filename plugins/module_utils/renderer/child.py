# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exec mode's child process: start it, signal it on change (or restart it), stop it."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time

from ..daemon import logs


class Child:
    def __init__(self, settings):
        self.settings = settings
        self.process = None

    @property
    def started(self) -> bool:
        return self.process is not None

    def start(self) -> None:
        # A session of its own: a signal reaches the child once, forwarded by us.
        self.process = subprocess.Popen(self.settings.command, start_new_session=True)
        logs.event(logging.INFO, "child started", pid=self.process.pid, command=" ".join(self.settings.command))

    def poll(self):
        return None if self.process is None else self.process.poll()

    def send(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signum)

    def changed(self) -> None:
        """After a render: the reload signal, or a restart when none is configured."""
        if self.process is None:
            return
        if self.settings.reload_signal:
            logs.event(logging.INFO, "signalling child", pid=self.process.pid, signal=self.settings.reload_signal)
            self.send(self.settings.reload_signal)
        else:
            self.stop()
            self.start()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.send(self.settings.kill_signal)
        deadline = time.monotonic() + self.settings.kill_timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.process.poll() is None:
            self.send(signal.SIGKILL)
            self.process.wait()

    def exit_code(self) -> int:
        code = self.process.returncode if self.process is not None else 1
        return 128 - code if code is not None and code < 0 else (code or 0)
