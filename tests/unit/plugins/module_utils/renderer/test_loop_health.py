"""The loop's health: "stuck" means stuck, not busy with a slow check or reload; a reload applies everything."""

import io
import socket
import urllib.request

from ansible_collections.dockyard.platform.plugins.module_utils.renderer import cli, status
from ansible_collections.dockyard.platform.plugins.module_utils.renderer import config as configuration
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.runner import Runner, render_allowance
from support.consul_agent import free_port


def snapshot(age, busy_with=None, allowance=0.0):
    return {
        "heartbeat_age": age,
        "busy": {"with": busy_with, "allowance": allowance},
        "templates": [],
        "consul": {"consecutive_failures": 0},
    }


def test_a_render_may_take_its_check_its_command_and_the_commands_rerun():
    template = configuration.parse_template(
        {"destination": "/x", "contents": "", "check": "true", "command": "true", "command_timeout": "30s"}, 0
    )
    assert render_allowance(template) == 90
    assert render_allowance(configuration.parse_template({"destination": "/x", "contents": ""}, 0)) == 0


def test_a_loop_busy_within_its_allowance_is_not_stuck():
    assert status.health(snapshot(85, "rendering haproxy", 90)) == (200, "ok")
    assert status.health(snapshot(119, "rendering haproxy", 90)) == (200, "ok")


def test_a_loop_past_its_allowance_is_stuck_and_says_doing_what():
    assert status.health(snapshot(121, "rendering haproxy", 90)) == (
        503,
        "render loop stuck for 121s (rendering haproxy)",
    )
    assert status.health(snapshot(31)) == (503, "render loop stuck for 31s")


def test_a_reload_uses_the_new_consul_address_and_settings(tmp_path, fake_consul):
    old = {"consul": {"address": "127.0.0.1:1"}, "templates": [{"destination": str(tmp_path / "o"), "contents": ""}]}
    runner = Runner(configuration.parse(old, {}), stdout=io.StringIO())
    new = dict(old, consul={"address": fake_consul.address}, watch={"max_stale": 0, "block_wait": "10s"})
    applied = []
    runner.reloader = lambda: configuration.parse(new, {})
    runner.on_reload = applied.append
    runner._reload()
    assert runner.client.settings.address == fake_consul.address
    assert runner.client.max_stale == 0
    assert applied == [runner.config]
    consul = runner.snapshot()["consul"]
    assert (consul["address"], consul["max_stale"]) == (f"http://{fake_consul.address}", 0)
    assert runner.snapshot()["watch"]["block_wait"] == 10


def test_a_reload_that_fails_keeps_everything(tmp_path):
    raw = {"consul": {"address": "127.0.0.1:1"}, "templates": [{"destination": str(tmp_path / "o"), "contents": ""}]}
    runner = Runner(configuration.parse(raw, {}), stdout=io.StringIO())
    client, config = runner.client, runner.config

    def broken():
        raise configuration.ConfigError("consul.address: expected host:port")

    runner.reloader = broken
    runner._reload()
    assert (runner.client, runner.config) == (client, config)


def test_a_reload_moves_the_status_endpoint_and_keeps_it_when_the_new_port_is_taken(tmp_path):
    raw = {"templates": [{"destination": str(tmp_path / "o"), "contents": ""}]}
    runner = Runner(configuration.parse(raw, {}), client=object(), stdout=io.StringIO())
    first, second = free_port(), free_port()
    endpoint = cli._StatusEndpoint(runner)
    try:
        endpoint.apply(configuration.StatusSettings("127.0.0.1", first))
        assert answers(first)
        endpoint.apply(configuration.StatusSettings("127.0.0.1", second))
        assert answers(second) and not answers(first)
        with socket.socket() as taken:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the port may still be in TIME_WAIT
            taken.bind(("127.0.0.1", first))
            taken.listen(1)
            wanted = configuration.StatusSettings("127.0.0.1", first)
            endpoint.apply(wanted)
            assert answers(second)
            assert (wanted.address, wanted.port) == ("127.0.0.1", second)  # the settings say what is in use
    finally:
        endpoint.stop()


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/status", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False
