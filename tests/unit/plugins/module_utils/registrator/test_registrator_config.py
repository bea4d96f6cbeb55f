import json

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.registrator import config

BASE = {"node": "node1", "address": "10.0.0.5"}


def parse(**settings):
    return config.parse({**BASE, **settings})


def test_defaults():
    parsed = parse()
    assert parsed.consul.base_url == "http://127.0.0.1:8500"
    assert (parsed.kv_prefix, parsed.session_ttl, parsed.resync_interval) == ("dockyard/", 20.0, 30.0)
    assert parsed.docker_url == "unix:///var/run/docker.sock"
    assert parsed.state_dir == "/var/lib/dockyard/registrator"
    assert parsed.session_name == "dockyard-registrator node1"
    assert parsed.instances_prefix == "dockyard/instances/node1/"  # the node's own: all its token may write


def test_full_file(tmp_path):
    document = {
        **BASE,
        "consul": {
            "address": "127.0.0.1:8501",
            "scheme": "https",
            "token": "secret",
            "ca_file": "/etc/consul.d/tls/ca.pem",
            "cert_file": "/etc/consul.d/tls/agent.pem",
            "key_file": "/etc/consul.d/tls/agent-key.pem",
        },
        "kv_prefix": "platform",
        "session_ttl": "1m",
        "resync_interval": "45s",
        "docker_url": "tcp://127.0.0.1:2375",
        "state_dir": "/srv/registrator",
        "log_level": "DEBUG",
    }
    path = tmp_path / "registrator.json"
    path.write_text(json.dumps(document))
    parsed = config.load(str(path))
    assert parsed.consul.base_url == "https://127.0.0.1:8501"
    assert parsed.consul.token == "secret"
    assert parsed.kv_prefix == "platform/"
    assert (parsed.session_ttl, parsed.resync_interval, parsed.log_level) == (60.0, 45.0, "debug")
    assert parsed.state_dir == "/srv/registrator"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"node": ""}, "node is required"),
        ({"node": "a/b"}, "node: expected letters, digits, '.', '_' and '-'"),
        ({"node": "a b"}, "node: expected letters, digits"),
        ({"node": "node1\n"}, "node: expected letters, digits"),
        ({"node": "-node1"}, "node: expected letters, digits"),
        ({"node": "n" * 101}, "node: expected letters, digits"),
        ({"address": " "}, "address is required"),
        ({"address": "node1.example"}, "address: expected an IPv4 or IPv6 address"),
        ({"address": "0.0.0.0"}, "address: 0.0.0.0 cannot be an instance's address"),
        ({"address": "fe80::1%eth0"}, "address: expected an IPv4 or IPv6 address (no scope ID)"),
        ({"session_ttl": "19s"}, "session_ttl: must be at least 20s"),
        ({"session_ttl": "3d"}, "session_ttl: expected a duration"),
        ({"session_ttl": "49h"}, "session_ttl: must be at most 172800s"),
        ({"resync_interval": "100ms"}, "resync_interval: must be at least 1s"),
        ({"resync_interval": True}, "resync_interval: expected a duration"),
        ({"kv_prefix": "/dockyard/"}, "kv_prefix: expected a KV folder such as dockyard/"),
        ({"kv_prefix": "dock\x00yard/"}, "kv_prefix: expected a KV folder"),
        ({"kv_prefix": "dockyard/../x/"}, "kv_prefix: 'dockyard/../x/' holds a '.' or '..' folder"),
        ({"docker_url": "/var/run/docker.sock"}, "docker_url: expected unix:///path"),
        ({"state_dir": "var/lib/registrator"}, "state_dir: expected an absolute path"),
        ({"state_dir": "/var/lib/registrator\n"}, "state_dir: expected an absolute path"),
        ({"state_dir": 7}, "state_dir: expected a string"),
        ({"log_level": "loud"}, "log_level: expected debug, info, warning or error"),
        ({"extra": 1}, "config: unknown setting(s) extra"),
        ({"consul": []}, "consul: expected a mapping"),
        ({"consul": {"tokn": "x"}}, "consul: unknown setting(s) tokn"),
        ({"consul": {"scheme": "ftp"}}, "consul.scheme: expected http or https"),
        ({"consul": {"address": "https://u:p@h:8501"}}, "consul.address: credentials in the address are refused"),
        ({"consul": {"address": "h:8501/v1"}}, "consul.address: a path in the address is refused"),
        ({"consul": {"token": 5}}, "consul.token: expected a string"),
        ({"consul": {"scheme": "https", "cert_file": "/c.pem"}}, "consul.cert_file and consul.key_file go together"),
        ({"consul": {"ca_file": "/ca.pem"}}, "need consul.scheme https"),
        ({"consul": {"verify": "maybe"}}, "consul.verify: expected true or false"),
    ],
)
def test_errors_name_the_setting(settings, message):
    with pytest.raises(config.ConfigError) as raised:
        parse(**settings)
    assert message in str(raised.value)


def test_unreadable_or_invalid_files(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(config.ConfigError, match="is not valid JSON"):
        config.load(str(bad))
    with pytest.raises(config.ConfigError, match="must be a JSON object"):
        config.parse([])


def test_check_files_names_the_missing_file(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    config.check_files(parse(consul={"scheme": "https", "ca_file": str(ca)}))
    parsed = parse(consul={"scheme": "https", "ca_file": str(ca), "cert_file": "/no/cert.pem", "key_file": str(ca)})
    with pytest.raises(config.ConfigError, match=r"consul\.cert_file: cannot read /no/cert\.pem: No such file"):
        config.check_files(parsed)


@pytest.mark.parametrize(
    ("session_ttl", "consul_ttl", "renew_every"),
    [("20s", 10.0, 10 / 3), ("25s", 12.5, 12.5 / 3), ("1m", 30.0, 10.0), ("48h", 86400.0, 28800.0)],
)
def test_session_gets_half_the_bound_and_is_renewed_every_third(session_ttl, consul_ttl, renew_every):
    parsed = parse(session_ttl=session_ttl)
    assert parsed.consul_ttl == consul_ttl
    assert parsed.renew_interval == pytest.approx(renew_every)
    # Consul may take twice its TTL to invalidate a session: that is the bound the operator asked for.
    assert 2 * parsed.consul_ttl <= parsed.session_ttl


def test_consul_ttl_floor_and_go_durations():
    assert config.consul_ttl(5) == 10.0  # never below Consul's minimum
    assert config.go_duration(10.0) == "10s"
    assert config.go_duration(12.5) == "12.5s"


@pytest.mark.parametrize("node", ["web", "node-1.example", "3f2a", "x_y", "N" * 100])
def test_node_names_the_routing_grammar_accepts(node):
    assert parse(node=node).node == node


def test_the_address_is_kept_in_its_canonical_form():
    assert parse(address="2001:DB8::0:1").address == "2001:db8::1"


def test_an_https_address_and_no_environment(monkeypatch):
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "from-the-environment")
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "elsewhere:8500")
    parsed = parse(consul={"address": "https://h:8501"})
    assert parsed.consul.base_url == "https://h:8501"
    assert parsed.consul.token == ""  # the registrator reads its file only
