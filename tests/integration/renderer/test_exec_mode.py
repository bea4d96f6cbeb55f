"""Must show: exec mode signals its child after a key change and forwards signals to it."""

import signal
import sys
import textwrap

from renderer_helpers import consul_settings, wait_for

CHILD = textwrap.dedent(
    """
    import signal, sys, time
    log, config = sys.argv[1], sys.argv[2]

    def note(text):
        with open(log, "a") as stream:
            stream.write(text + "\\n")

    signal.signal(signal.SIGHUP, lambda *_: note("HUP " + open(config).read().strip()))
    signal.signal(signal.SIGUSR1, lambda *_: note("USR1"))
    signal.signal(signal.SIGTERM, lambda *_: (note("TERM"), sys.exit(7)))
    note("ready " + open(config).read().strip())
    while True:
        time.sleep(0.05)
    """
)


def test_exec_mode_signals_the_child_and_forwards_signals(consul_agent, renderer, tmp_path):
    consul_agent.put("exec/value", "one")
    child_script = tmp_path / "child.py"
    child_script.write_text(CHILD)
    events = tmp_path / "events"
    config = tmp_path / "app.conf"
    process = renderer(
        {
            "consul": consul_settings(consul_agent),
            "wait": {"min": 0.1, "max": 1},
            "exec": {"reload_signal": "SIGHUP", "kill_timeout": 5},
            "templates": [{"name": "app", "contents": "{{ key('exec/value') }}\n", "destination": str(config)}],
        },
        mode="exec",
        child=[sys.executable, str(child_script), str(events), str(config)],
    )
    # The child starts only after the first render.
    wait_for(lambda: events.exists() and "ready one" in events.read_text(), 15, what="the child to start")

    consul_agent.put("exec/value", "two")
    wait_for(lambda: "HUP two" in events.read_text(), 10, what="the reload signal after a change")

    process.signal(signal.SIGUSR1)
    wait_for(lambda: "USR1" in events.read_text(), 5, what="SIGUSR1 forwarded to the child")

    process.signal(signal.SIGTERM)
    assert process.process.wait(15) == 7, "exec mode exits with the child's exit code"
    assert events.read_text().splitlines() == ["ready one", "HUP two", "USR1", "TERM"]


def test_exec_mode_restarts_the_child_without_a_reload_signal(consul_agent, renderer, tmp_path):
    consul_agent.put("exec2/value", "one")
    events = tmp_path / "events"
    config = tmp_path / "app.conf"
    script = f'echo "start $(cat {config})" >> {events}; exec sleep 60'
    process = renderer(
        {
            "consul": consul_settings(consul_agent),
            "wait": {"min": 0.1, "max": 1},
            "exec": {"command": script, "reload_signal": None, "kill_timeout": 2},
            "templates": [{"name": "app", "contents": "{{ key('exec2/value') }}\n", "destination": str(config)}],
        },
        mode="exec",
    )
    wait_for(lambda: events.exists() and "start one" in events.read_text(), 15, what="the child to start")
    consul_agent.put("exec2/value", "two")
    wait_for(lambda: "start two" in events.read_text(), 10, what="the child to restart")
    assert process.alive()
