"""Must show: each fault leaves the live file byte-identical and runs no reload command.

Every case starts a daemon that renders a good file, then brings about one
fault, waits until the daemon reports it, and checks the live file, the
reload log, leftover candidates, and that the daemon still runs.
"""

import json
import signal

import pytest
from renderer_helpers import consul_settings, wait_for

GOOD = "{% for b in tree(p ~ 'backends') %}server {{ b.key }} {{ b.value }}\n{% endfor %}name={{ key(p ~ 'name') }}\n"


def _syntax_error(ctx):
    ctx["source"].write_text("{% for b in tree(p ~ 'backends') %}unclosed loop\n")
    ctx["daemon"].signal(signal.SIGHUP)
    return lambda t: t["last_error"] and "syntax error" in t["last_error"]


def _undefined_variable(ctx):
    ctx["agent"].put(ctx["prefix"] + "name", "boom")
    return lambda t: t["last_error"] and "UndefinedError" in t["last_error"]


def _failing_check(ctx):
    ctx["agent"].put(ctx["prefix"] + "name", "refused-by-check")
    return lambda t: t["check_failures"] > 0


def _empty_answer_beyond_max_drop(ctx):
    # One transaction, so that the daemon sees 10 entries become 4 in one answer.
    deletes = [{"KV": {"Verb": "delete", "Key": f"{ctx['prefix']}backends/b{n}"}} for n in range(4, 10)]
    ctx["agent"].request("PUT", "/v1/txn", json.dumps(deletes).encode())
    return lambda t: t["refusals"] > 0 and "fell from 10 to 4" in t["last_error"]


def _whole_prefix_gone(ctx):
    ctx["agent"].delete_tree(ctx["prefix"] + "backends")
    return lambda t: t["refusals"] > 0 and "fell from 10 to 0" in t["last_error"]


def _missing_key(ctx):
    ctx["agent"].request("DELETE", f"/v1/kv/{ctx['prefix']}name")
    return lambda t: t["waiting_for"] and "missing key" in t["waiting_for"]


FAULTS = {
    "syntax-error": _syntax_error,
    "undefined-variable": _undefined_variable,
    "failing-check": _failing_check,
    "empty-answer-beyond-max-drop": _empty_answer_beyond_max_drop,
    "whole-prefix-gone": _whole_prefix_gone,
    "missing-key": _missing_key,
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_keeps_the_live_file_and_runs_no_reload(fault, consul_agent, renderer, tmp_path):
    prefix = f"fault/{fault}/"
    consul_agent.delete_tree(prefix)
    for number in range(10):
        consul_agent.put(f"{prefix}backends/b{number}", f"10.0.0.{number}:80")
    consul_agent.put(prefix + "name", "good")
    source = tmp_path / "fault.j2"
    # The undefined variable only shows when the name key says so: the first render is good.
    source.write_text(
        "{% set p = '" + prefix + "' %}" + GOOD + "{% if key(p ~ 'name') == 'boom' %}{{ nope }}{% endif %}"
    )
    live = tmp_path / "out" / "fault.conf"
    reloads = tmp_path / "reloads"
    daemon = renderer(
        {
            "consul": consul_settings(consul_agent),
            "wait": {"min": 0.1, "max": 1},
            "templates": [
                {
                    "name": "fault",
                    "source": str(source),
                    "destination": str(live),
                    "check": "! grep -q refused-by-check %s",
                    "command": f"echo reload >> {reloads}",
                    "max_drop": "50%",
                }
            ],
        }
    )
    daemon.wait_ready()
    wait_for(reloads.exists, 5, what="the good render's reload")
    good = live.read_bytes()
    assert b"server b9 10.0.0.9:80" in good
    reloads_before = reloads.read_text()

    reported = FAULTS[fault]({"agent": consul_agent, "prefix": prefix, "daemon": daemon, "source": source})
    wait_for(lambda: reported(daemon.template("fault")), 10, 0.05, f"the daemon to report the {fault}")

    assert live.read_bytes() == good
    assert reloads.read_text() == reloads_before
    assert not [path.name for path in live.parent.iterdir() if path.name != live.name], "a candidate was left behind"
    assert daemon.alive()


def test_failing_command_puts_the_previous_file_back_and_reruns_it(consul_agent, renderer, tmp_path):
    consul_agent.put("rollback/value", "good-1")
    live = tmp_path / "rollback.conf"
    runs = tmp_path / "runs"
    # The "reload" refuses any file that says bad, like a service refusing a config it cannot load.
    command = f"cat {live} >> {runs}; ! grep -q bad {live}"
    daemon = renderer(
        {
            "consul": consul_settings(consul_agent),
            "wait": {"min": 0.1, "max": 1},
            "templates": [
                {
                    "name": "rollback",
                    "contents": "{{ key('rollback/value') }}\n",
                    "destination": str(live),
                    "command": command,
                    "mode": "0640",
                }
            ],
        }
    )
    daemon.wait_ready()
    consul_agent.put("rollback/value", "bad-2")
    wait_for(lambda: daemon.template("rollback")["command_failures"] == 1, 10, what="the failed command")
    assert live.read_text() == "good-1\n"
    assert oct(live.stat().st_mode & 0o777) == "0o640"
    assert runs.read_text() == "good-1\nbad-2\ngood-1\n"  # first render, the failed reload, the rerun
    assert daemon.alive()
    consul_agent.put("rollback/value", "good-3")
    wait_for(lambda: daemon.template("rollback")["last_error"] is None, 10, what="the next good render")
    assert live.read_text() == "good-3\n"
