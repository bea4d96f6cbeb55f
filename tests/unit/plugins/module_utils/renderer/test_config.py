import json

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.renderer import cli, config


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


def _https_config(tmp_path, **consul):
    template = tmp_path / "t.j2"
    template.write_text("static\n")
    path = tmp_path / "renderer.json"
    raw = {
        "consul": {"address": "127.0.0.1:1", "scheme": "https", **consul},
        "templates": [{"source": str(template), "destination": str(tmp_path / "out.cfg")}],
    }
    path.write_text(json.dumps(raw))
    return path


@pytest.mark.parametrize("setting", ["ca_file", "cert_file", "key_file"])
def test_check_files_names_the_setting_of_a_missing_tls_file(tmp_path, setting):
    present = tmp_path / "present.pem"
    present.write_text("x")
    files = {name: str(present) for name in ("ca_file", "cert_file", "key_file")}
    files[setting] = str(tmp_path / "missing.pem")
    settings = config.parse({"consul": {"scheme": "https", **files}}, {}).consul
    with pytest.raises(config.ConfigError, match=rf"^consul\.{setting}: cannot read .*missing\.pem: No such file"):
        config.check_files(settings)
    with pytest.raises(config.ConfigError, match=r"^ca_path: cannot read"):
        config.check_files(
            config.parse({"consul": {"ca_file": str(tmp_path / "missing.pem")}}, {}).consul, {"ca_file": "ca_path"}
        )
    config.check_files(config.parse({"consul": {"scheme": "https", "ca_file": str(present)}}, {}).consul)


@pytest.mark.parametrize("mode", ["validate", "once", "dry"])
def test_a_missing_ca_file_fails_every_mode_naming_the_setting(tmp_path, capsys, monkeypatch, mode):
    for variable in ("CONSUL_HTTP_ADDR", "CONSUL_CACERT", "CONSUL_CLIENT_CERT", "CONSUL_CLIENT_KEY"):
        monkeypatch.delenv(variable, raising=False)
    path = _https_config(tmp_path, ca_file=str(tmp_path / "no-ca.pem"))
    assert cli.main(["--config", str(path), "--mode", mode]) == 2
    captured = capsys.readouterr()
    assert (
        captured.err == f"renderer: consul.ca_file: cannot read {tmp_path / 'no-ca.pem'}: No such file or directory\n"
    )
    assert captured.out == ""
    assert not (tmp_path / "out.cfg").exists()
