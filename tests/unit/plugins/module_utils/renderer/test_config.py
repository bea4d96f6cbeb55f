import json

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.daemon import consul
from ansible_collections.dockyard.platform.plugins.module_utils.renderer import cli, commands, config
from hypothesis import given
from hypothesis import strategies as st


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
        consul.check_files(settings)
    missing = {"scheme": "https", "ca_file": str(tmp_path / "missing.pem")}
    with pytest.raises(config.ConfigError, match=r"^ca_path: cannot read"):
        consul.check_files(consul.parse_settings(missing, names={"ca_file": "ca_path"}))
    consul.check_files(config.parse({"consul": {"scheme": "https", "ca_file": str(present)}}, {}).consul)


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


# --- the one Consul settings parser and address check (daemon/consul.py), as the renderer reads them -----------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:8500", (None, "127.0.0.1:8500")),
        ("https://consul.example:8501/", ("https", "consul.example:8501")),
        ("HTTP://h:1", ("http", "h:1")),
        ("[::1]:8500", (None, "[::1]:8500")),
        ("consul", (None, "consul")),
        (" h:08500 ", (None, "h:8500")),
    ],
)
def test_the_address_check_accepts(address, expected):
    assert consul.parse_address(address) == expected


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("http://user:secret@h:8500", "consul.address: credentials in the address are refused"),
        ("h:8500/v1/kv", "consul.address: a path in the address is refused"),
        ("unix:///run/consul.sock", "consul.address: the scheme must be http or https"),
        ("h:0", "consul.address: the port must lie between 1 and 65535"),
        ("h:70000", "consul.address: the port must lie between 1 and 65535"),
        ("h:8500?dc=x", "consul.address: expected host:port"),
        ("h:8500\n", "consul.address: expected host:port"),
        ("  ", "consul.address: expected host:port"),
        (8500, "consul.address: expected a string"),
    ],
)
def test_the_address_check_refuses_naming_the_setting(address, message):
    with pytest.raises(config.ConfigError) as refused:
        config.parse({"consul": {"address": address}}, {})
    assert str(refused.value).startswith(message)
    assert "secret" not in str(refused.value)


@given(st.text(max_size=80))
def test_the_address_check_either_refuses_or_gives_a_clean_host_and_port(text):
    try:
        scheme, hostport = consul.parse_address(text)
    except config.ConfigError as error:
        assert str(error).startswith("consul.address: ")
        return
    assert scheme in (None, "http", "https")
    assert hostport and not any(char in hostport for char in "/@?# \n\r\t")
    assert consul.parse_address(hostport) == (None, hostport)


def test_a_scheme_in_the_address_wins_and_tls_files_need_https():
    assert consul.parse_settings({"address": "https://h:1", "scheme": "http"}).base_url == "https://h:1"
    assert consul.parse_settings({"address": "h:1", "ssl": True}).base_url == "https://h:1"
    with pytest.raises(config.ConfigError, match=r"^consul.ca_file: TLS files need consul.scheme https"):
        consul.parse_settings({"ca_file": "/ca.pem"})
    # From the environment they are used only over https, as the consul CLI does.
    assert consul.parse_settings({}, {"CONSUL_CACERT": "/ca.pem"}).scheme == "http"


def test_the_renderer_and_the_registrator_read_consul_alike():
    from ansible_collections.dockyard.platform.plugins.module_utils.registrator import config as registrator

    raw = {"address": "https://h:8501", "token": "t", "ca_file": "/ca.pem", "verify": False, "datacenter": "dc2"}
    rendered = config.parse({"consul": raw}, {}).consul
    registered = registrator.parse({"node": "n1", "address": "10.0.0.5", "consul": raw}).consul
    assert rendered == registered
    assert (rendered.base_url, rendered.datacenter, rendered.verify) == ("https://h:8501", "dc2", False)


@pytest.mark.parametrize(
    ("check", "expected", "runs"),
    [
        ("haproxy -c -f {{candidate}}", "haproxy -c -f %s", "haproxy -c -f /d/c"),
        ("grep x {{ candidate }} && printf '%s' ok", "grep x %s && printf '%%s' ok", "grep x /d/c && printf '%s' ok"),
        (["haproxy", "-f", "{{candidate}}"], ["haproxy", "-f", "%s"], ["haproxy", "-f", "/d/c"]),
        ("haproxy -c -f %s", "haproxy -c -f %s", "haproxy -c -f /d/c"),
    ],
)
def test_the_earlier_placeholder_is_read_as_the_one_placeholder(check, expected, runs):
    template = {"contents": "", "destination": "/x", "check": check}
    parsed = config.parse({"templates": [template]}, {}).templates[0]
    assert parsed.check == expected
    assert commands.with_candidate(parsed.check, "/d/c") == runs
