"""The one bad-input harness of the Molecule verifiers.

A test runs one role through bad-input.yml (beside this file) against the
scenario's inventory plus the bad variables or the bad inventory it gives, then
asserts that the role's failure (or warning) message names what was bad and
that nothing changed: no task of the run reports a change (`assert_changed_nothing`)
and the files the role writes are the same byte for byte (`unchanged`).
The run's results are read from Ansible's JSON callback, so a message is
matched in the failed task's own result, not anywhere in the log.
"""

import contextlib
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

PLAYBOOK = Path(__file__).with_name("bad-input.yml")


def _folded(text) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()


@dataclass
class Run:
    """One ansible-playbook run of bad-input.yml."""

    returncode: int
    report: dict  # the JSON callback's document
    output: str  # stdout and stderr as they came

    def results(self) -> list[tuple[str, dict]]:
        """(host, result) of every task of the run."""
        return [
            (host, result)
            for play in self.report.get("plays", [])
            for task in play["tasks"]
            for host, result in task["hosts"].items()
        ]

    def messages(self, failed: bool) -> list[str]:
        return [
            _folded(result.get("msg", ""))
            for _host, result in self.results()
            if bool(result.get("failed")) == failed and "msg" in result
        ]

    def assert_refused(self, *fragments: str) -> None:
        """The run failed, and one failed task's message holds every fragment."""
        failures = self.messages(failed=True)
        assert self.returncode != 0, f"the role accepted the bad input: {self.output[-2000:]}"
        assert any(all(f in message for f in fragments) for message in failures), (fragments, failures)

    def assert_warned(self, *fragments: str) -> None:
        """The run passed, and one task's message holds every fragment."""
        assert self.returncode == 0, self.output[-2000:]
        messages = self.messages(failed=False)
        assert any(all(f in message for f in fragments) for message in messages), (fragments, messages)

    def assert_changed_nothing(self) -> None:
        stats = self.report.get("stats", {})
        assert stats, self.output[-2000:]
        assert not any(host["changed"] for host in stats.values()), stats


def play_role(
    role: str,
    workdir: Path,
    variables: dict | None = None,
    inventory: str | None = None,
    hosts: str | None = None,
    tasks_from: str | None = None,
) -> Run:
    """Runs role through bad-input.yml with bad variables (extra vars) or a bad inventory (YAML text)."""
    command = ["ansible-playbook", "-i", str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)]
    if inventory is not None:
        bad_inventory = workdir / "bad-inventory.yml"
        bad_inventory.write_text(inventory)
        command += ["-i", str(bad_inventory)]
    settings = {"bad_input_role": role, **({"bad_input_hosts": hosts} if hosts else {})}
    if tasks_from:
        settings["bad_input_tasks"] = tasks_from
    bad_variables = workdir / "bad-variables.json"
    bad_variables.write_text(json.dumps({**settings, **(variables or {})}))
    command += [str(PLAYBOOK), "-e", f"@{bad_variables}"]
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, env=env)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"ansible-playbook gave no report: {(done.stdout + done.stderr)[-2000:]}") from None
    return Run(done.returncode, report, done.stdout + done.stderr)


@contextlib.contextmanager
def unchanged(hosts: list, paths: str):
    """Asserts on leaving that the files (paths, shell words) on each testinfra host are as they were on entering."""

    def fingerprint() -> list[str]:
        return [host.check_output(f"sha256sum {paths}") for host in hosts]

    before = fingerprint()
    yield
    assert fingerprint() == before
