"""Tasks of the daemon roles whose arguments carry the Consul token keep them out of the log.

At -vvv (and in a failure's result) Ansible prints a module's arguments; `no_log: true` is what hides them.
The copy module's `content` is no_log already, and `diff: false` keeps it out of --diff, so a copy whose token
reaches only `content` passes with `diff: false`.
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
ROLES = ("renderer", "registrator")
KEYWORDS = {
    "name", "when", "register", "loop", "loop_control", "notify", "changed_when", "failed_when", "until", "retries",
    "delay", "ignore_errors", "no_log", "diff", "tags", "vars", "become", "check_mode", "listen", "block", "rescue",
    "always", "delegate_to", "run_once", "environment",
}  # fmt: skip


def secret_variables(role):
    """The role's token input and every internal value built from it."""
    secret = {f"{role}_consul_token"}
    definitions = yaml.safe_load((ROOT / "roles" / role / "vars/main.yml").read_text()) or {}
    texts = {name: yaml.safe_dump(value) for name, value in definitions.items()}
    while True:
        found = {name for name, text in texts.items() if any(re.search(rf"\b{s}\b", text) for s in secret)}
        if found <= secret:
            return secret
        secret |= found


def expressions(value):
    """The Jinja expressions in a value: the text between {{ }} and {% %} (prose may name a variable)."""
    return " ".join(re.findall(r"\{[{%](.*?)[}%]\}", yaml.safe_dump(value), re.S))


def tasks(items):
    for task in items or []:
        yield task
        for section in ("block", "rescue", "always"):
            yield from tasks(task.get(section))


def leaks(role):
    secret = secret_variables(role)
    found = []
    for path in sorted((ROOT / "roles" / role / "tasks").glob("*.yml")):
        for task in tasks(yaml.safe_load(path.read_text())):
            if task.get("no_log") is True or "block" in task:
                continue
            arguments = {key: value for key, value in task.items() if key not in KEYWORDS}
            for module, args in arguments.items():
                carrying = [
                    option
                    for option, value in (args.items() if isinstance(args, dict) else [("", args)])
                    if any(re.search(rf"\b{name}\b", expressions(value)) for name in secret)
                ]
                quiet_copy = module.endswith("copy") and carrying == ["content"] and task.get("diff") is False
                if carrying and not quiet_copy:
                    found.append(f"{path.name}: {task.get('name')} ({', '.join(carrying)})")
    return found


@pytest.mark.parametrize("role", ROLES)
def test_tasks_that_carry_the_consul_token_are_no_log(role):
    assert f"_{role}_consul_headers" in secret_variables(role)
    assert leaks(role) == []
