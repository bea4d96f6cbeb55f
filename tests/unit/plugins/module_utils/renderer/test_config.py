import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.renderer import config


def test_durations_and_shares():
    assert config.duration("250ms", "x") == 0.25
    assert config.duration("2m", "x") == 120
    assert config.duration(3, "x") == 3
    assert config.share("50%", "x") == 0.5
    assert config.share(0.25, "x") == 0.25
    with pytest.raises(config.ConfigError, match="x: expected a duration"):
        config.duration("soon", "x")
    with pytest.raises(config.ConfigError, match="between 0 and 1"):
        config.share("150%", "x")


def test_environment_then_file_settings_for_consul():
    env = {
        "CONSUL_HTTP_ADDR": "https://consul.example:8501",
        "CONSUL_HTTP_TOKEN": "env-token",
        "CONSUL_CACERT": "/ca.pem",
        "CONSUL_CLIENT_CERT": "/c.pem",
        "CONSUL_CLIENT_KEY": "/k.pem",
    }
    from_env = config.parse({}, env).consul
    assert from_env.base_url == "https://consul.example:8501"
    assert (from_env.token, from_env.ca_file, from_env.cert_file) == ("env-token", "/ca.pem", "/c.pem")
    from_file = config.parse({"consul": {"address": "10.0.0.1:8500", "scheme": "http", "token": "file"}}, env).consul
    assert from_file.base_url == "http://10.0.0.1:8500"
    assert from_file.token == "file"
    assert config.parse({}, {"CONSUL_HTTP_ADDR": "h:1", "CONSUL_HTTP_SSL": "true"}).consul.base_url == "https://h:1"


def test_template_settings_and_block_wait_cap():
    parsed = config.parse(
        {
            "wait": {"min": "1s", "max": "5s"},
            "watch": {"block_wait": "20m"},
            "templates": [{"source": "/t.j2", "destination": "/etc/x.cfg", "mode": "0640", "max_drop": "50%"}],
        },
        {},
    )
    assert parsed.watch.block_wait == config.MAX_BLOCK_WAIT
    template = parsed.templates[0]
    assert (template.name, template.mode, template.max_drop) == ("x.cfg", 0o640, 0.5)
    assert parsed.wait_for(template).max == 5


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"templates": [{"destination": "/x"}]}, r"templates\[0\]: give exactly one of source and contents"),
        ({"templates": [{"source": "/a"}]}, r"templates\[0\].destination is required"),
        ({"templates": [{"source": "/a", "destination": "/x", "bogus": 1}]}, "unknown setting"),
        ({"wait": {"min": 5, "max": 1}}, "wait.max must not be below wait.min"),
        ({"exec": {"reload_signal": "SIGNOPE"}}, "exec.reload_signal: unknown signal"),
        ({"status": {"port": "80"}}, "status.port"),
        (
            {"templates": [{"contents": "", "destination": "/a/x"}, {"contents": "", "destination": "/b/x"}]},
            "names must be unique",
        ),
    ],
)
def test_bad_settings_name_themselves(raw, message):
    with pytest.raises(config.ConfigError, match=message):
        config.parse(raw, {})
