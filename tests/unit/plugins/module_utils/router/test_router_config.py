"""Must show: the reporter's configuration file gives its defaults, and a bad setting fails naming it."""

import json

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.config import ConfigError
from ansible_collections.dockyard.platform.plugins.module_utils.router import cli
from ansible_collections.dockyard.platform.plugins.module_utils.router import config as configuration


def test_defaults():
    parsed = configuration.parse({"node": "node1"})
    assert parsed.key == "dockyard/routers/node1"
    assert parsed.master_socket == "/run/haproxy-master.sock"
    assert (parsed.poll_interval, parsed.min_interval, parsed.heartbeat, parsed.error_after) == (0.5, 1.0, 30.0, 5.0)
    assert parsed.heartbeat_ms == 30000
    assert parsed.consul.base_url == "http://127.0.0.1:8500" and parsed.consul.token == ""


def test_full_file():
    parsed = configuration.parse(
        {
            "node": "router-1",
            "consul": {"address": "https://127.0.0.1:8501", "token": "secret"},
            "kv_prefix": "platform",
            "master_socket": "/run/other.sock",
            "poll_interval": "250ms",
            "min_interval": "2s",
            "heartbeat": "1m",
            "error_after": "10s",
            "status_file": "/run/x/status.json",
            "log_level": "DEBUG",
        }
    )
    assert parsed.key == "platform/routers/router-1"
    assert (parsed.poll_interval, parsed.min_interval, parsed.heartbeat, parsed.error_after) == (0.25, 2, 60, 10)
    assert (parsed.consul.scheme, parsed.consul.token, parsed.log_level) == ("https", "secret", "debug")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"node": ""}, "node is required"),
        ({"node": "a/b"}, "node: expected letters"),
        ({"kv_prefix": "../x/"}, "kv_prefix"),
        ({"heartbeat": "500ms"}, "heartbeat: must lie between 1s and 1h"),
        ({"heartbeat": "2h"}, "heartbeat: must lie between 1s and 1h"),
        ({"poll_interval": "10ms"}, "poll_interval: must lie between 100ms and the heartbeat"),
        ({"min_interval": "1m"}, "min_interval: must not exceed the heartbeat"),
        ({"error_after": "soon"}, "error_after: expected a duration"),
        ({"master_socket": "relative.sock"}, "master_socket: expected an absolute path"),
        ({"status_file": "/run/a b"}, "status_file"),
        ({"consul": {"adress": "x"}}, "consul: unknown setting(s) adress"),
        ({"heartbeats": "1s"}, "config: unknown setting(s) heartbeats"),
        ({"log_level": "loud"}, "log_level"),
    ],
)
def test_bad_settings_are_named(changes, message):
    with pytest.raises(ConfigError) as raised:
        configuration.parse({"node": "node1", **changes})
    assert message in str(raised.value)


def test_validate_mode_names_the_setting(tmp_path, capsys):
    path = tmp_path / "router.json"
    path.write_text(json.dumps({"node": "node1", "consul": {"token_file": str(tmp_path / "missing")}}))
    assert cli.main(["--config", str(path), "--mode", "validate"]) == 1
    assert "consul.token_file: cannot read" in capsys.readouterr().err
    path.write_text(json.dumps({"node": "node1"}))
    assert cli.main(["--config", str(path), "--mode", "validate"]) == 0


def test_health_mode_without_a_status_file_fails_saying_so(tmp_path, capsys):
    path = tmp_path / "router.json"
    path.write_text(json.dumps({"node": "node1", "status_file": str(tmp_path / "status.json")}))
    assert cli.main(["--config", str(path), "--mode", "health"]) == 1
    assert "router: no status in" in capsys.readouterr().err
