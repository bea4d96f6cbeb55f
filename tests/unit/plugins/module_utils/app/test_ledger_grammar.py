"""The lock and ledger's parsers: ZooKeeper connection strings, chroots, ids and ledger entries.

Named cases, and Hypothesis properties: whatever a parser is given, it returns
a value in its grammar or raises LedgerError, never anything else.
"""

import json
import socket
import string

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.app.ledger import (
    DEFAULT_CHROOT,
    ENTRY_KEYS,
    MAX_ENTRY_BYTES,
    Entry,
    Holder,
    LedgerError,
    decode_entry,
    describe_holder,
    encode_entry,
    new_deployment_id,
    parse_app,
    parse_chroot,
    parse_hosts,
    parse_settings,
)
from hypothesis import given, settings
from hypothesis import strategies as st

PROPERTY = settings(max_examples=300, derandomize=True, deadline=None)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=16,
)
near_misses = st.builds(
    lambda head, bad, tail: head + bad + tail,
    st.sampled_from(["", "zk1:2181", "zk1:2181,zk2:2181", "[::1]:2181", "zk1:2181/dockyard", "/dockyard"]),
    st.sampled_from(["\n", "\x00", " ", ",", "/", ":", "[", "]", "..", "/zookeeper", "\u2028", "\u00e9"]),
    st.text(max_size=20),
)
labels = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
dns_names = st.lists(labels, min_size=1, max_size=4).map(".".join)
ports = st.integers(1, 65535)
segments = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True).filter(lambda s: s != "zookeeper")
SERVER_CHARACTERS = set(string.ascii_lowercase + string.digits + ".-:[]abcdef")


def sample_entry(**fields) -> Entry:
    values = {
        "app": "web",
        "sequence": "0000000007",
        "deployment": "20261201T130500Z-1a2b3c4d",
        "version": "v1abc",
        "image": "registry.lab:5000/web:git-abc",
        "spec": {"replicas": 3},
        "user": "alice",
        "host": "manager-1",
        "started": "2026-12-01T13:05:00Z",
    }
    return Entry(**{**values, **fields})


# -- hosts and chroots ----------------------------------------------------------------------
def test_a_hosts_string_parses_into_normalised_servers_and_its_chroot():
    assert parse_hosts("ZK1.lab:2181,10.0.0.7:2182,[::1]:2183/dockyard/prod") == (
        ("zk1.lab:2181", "10.0.0.7:2182", "[::1]:2183"),
        "/dockyard/prod",
    )
    assert parse_hosts("zk1:2181") == (("zk1:2181",), None)


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        ("zk1", r"hosts server 'zk1': expected host:port or \[ipv6\]:port, got 'zk1'"),
        ("zk1:2181,", r"hosts server '': expected host:port"),
        ("zk1:2181, zk2:2181", r"hosts server ' zk2:2181': ' zk2' is not a DNS name"),
        ("zk1:0", r"hosts server 'zk1:0': expected a port number 1-65535, got 0"),
        ("zk1:99999", r"expected a port number 1-65535, got 99999"),
        ("zk_1:2181", r"'zk_1' is not a DNS name"),
        ("::1:2181", r"expected host:port or \[ipv6\]:port"),
        ("[10.0.0.1]:2181", r"only an IPv6 address goes in brackets"),
        ("[fe80::1%eth0]:2181", r"expected an IPv4 or IPv6 address \(no scope ID\)"),
        ("zk1:2181,zk1:2181", r"a server is listed twice"),
        ("zk1:2181/", r"hosts chroot segment '': expected letters"),
        ("zk1:2181/a//b", r"hosts chroot segment '': expected letters"),
        ("zk1:2181/zookeeper", r"hosts chroot: /zookeeper is ZooKeeper's own tree"),
        ("zk1:2181/a/..", r"hosts chroot segment '..': expected letters"),
        ("zk1:2181/a\n", r"hosts chroot segment 'a\\n'"),
        ("", r"hosts: expected host:port,host:port\[/chroot\], got ''"),
        (["zk1:2181"], r"hosts: expected host:port,host:port\[/chroot\], got \['zk1:2181'\]"),
    ],
)
def test_a_bad_hosts_string_is_refused_naming_the_part(hosts, message):
    with pytest.raises(LedgerError, match=message):
        parse_hosts(hosts)


def test_settings_take_the_chroot_from_the_hosts_string_or_the_option_or_the_default():
    assert parse_settings("zk1:2181").chroot == DEFAULT_CHROOT
    assert parse_settings("zk1:2181", "/apps").chroot == "/apps"
    assert parse_settings("zk1:2181/apps", "/apps").chroot == "/apps"
    assert parse_settings("zk1:2181,zk2:2181").hosts == "zk1:2181,zk2:2181"
    with pytest.raises(LedgerError, match="chroot: /other differs from the hosts string's chroot /apps"):
        parse_settings("zk1:2181/apps", "/other")
    with pytest.raises(LedgerError, match=r"connect_timeout: expected seconds from 0\.1 to 600, got 0"):
        parse_settings("zk1:2181", connect_timeout=0)
    with pytest.raises(LedgerError, match="session_timeout: expected seconds from 1 to 600, got True"):
        parse_settings("zk1:2181", session_timeout=True)


def test_digest_credentials_come_in_pairs_and_the_password_is_never_shown():
    settings = parse_settings("zk1:2181", username="deployer", password="s3cret-pass\u00e9")
    assert (settings.username, settings.password) == ("deployer", "s3cret-pass\u00e9")
    assert "s3cret" not in repr(settings)
    assert parse_settings("zk1:2181").client_options() == {}
    with pytest.raises(LedgerError, match="username: expected letters"):
        parse_settings("zk1:2181", password="s3cret-pass")
    with pytest.raises(LedgerError, match="username: expected letters"):
        parse_settings("zk1:2181", username="de:ployer", password="s3cret-pass")
    for password in (None, "", "s3cret\npass", 42):
        with pytest.raises(LedgerError, match=r"^password: expected 1 to 1024 characters") as refused:
            parse_settings("zk1:2181", username="deployer", password=password)
        assert "s3cret" not in str(refused.value)


@PROPERTY
@given(
    st.lists(
        st.one_of(st.tuples(dns_names, ports), st.tuples(st.ip_addresses(v=6).map(str), ports)), min_size=1, max_size=5
    ),
    st.one_of(st.none(), st.lists(segments, min_size=1, max_size=8).map(lambda parts: "/" + "/".join(parts))),
)
def test_property_well_formed_hosts_strings_are_accepted_and_normalising_is_idempotent(servers, chroot):
    text = ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in servers)
    text += chroot or ""
    try:
        parsed = parse_hosts(text)
    except LedgerError as error:
        # Only what the grammar refuses on purpose: a server twice, an unspecified or multicast address.
        assert "twice" in str(error) or "cannot be" in str(error)
        return
    assert parsed[1] == chroot
    assert parse_hosts(",".join(parsed[0]) + (parsed[1] or "")) == parsed


@PROPERTY
@given(st.one_of(st.text(max_size=80), near_misses, json_values))
def test_property_a_hosts_string_is_accepted_only_as_inert_servers_and_a_chroot(value):
    try:
        servers, chroot = parse_hosts(value)
    except LedgerError:
        return
    assert 1 <= len(servers) <= 32
    assert all(set(server) <= SERVER_CHARACTERS and server.rsplit(":", 1)[1].isdigit() for server in servers)
    assert chroot is None or parse_chroot(chroot) == chroot


@PROPERTY
@given(st.one_of(st.text(max_size=80), near_misses, json_values))
def test_property_a_chroot_is_accepted_only_as_a_plain_absolute_path(value):
    try:
        chroot = parse_chroot(value)
    except LedgerError:
        return
    parts = chroot.split("/")
    assert parts[0] == "" and 1 <= len(parts) - 1 <= 8
    assert all(part and part not in (".", "..") for part in parts[1:]) and parts[1] != "zookeeper"
    assert set(chroot) <= set(string.ascii_letters + string.digits + "_.-/")


# -- names and ids --------------------------------------------------------------------------
def test_app_names_use_the_routing_schemas_grammar():
    assert parse_app("web.eu-1") == "web.eu-1"
    with pytest.raises(LedgerError, match="app: expected letters, digits"):
        parse_app("../web")


def test_deployment_ids_sort_by_start_and_are_unique():
    first, second = new_deployment_id(), new_deployment_id()
    assert first != second and len(first) == len("20261201T130500Z-1a2b3c4d")
    assert first[:16] <= second[:16]


def test_a_holder_here_names_this_host_and_user_and_refuses_a_bad_id():
    holder = Holder.here("d-1")
    assert (holder.deployment, holder.host) == ("d-1", socket.gethostname())
    assert holder.user and holder.started.endswith("Z")
    with pytest.raises(LedgerError, match="deployment: expected letters"):
        Holder.here("d 1")


# -- ledger entries -------------------------------------------------------------------------
def test_an_entry_survives_encoding():
    entry = sample_entry(steps=({"name": "start new", "seconds": 1.5, "ok": True},), outcome="succeeded")
    assert decode_entry("web", "0000000007", encode_entry(entry)) == entry


def test_an_entry_written_by_a_newer_module_is_read_without_its_new_keys():
    record = {**sample_entry().to_json(), "weights": {"v1abc": 100}}
    assert decode_entry("web", "0000000007", json.dumps(record).encode()) == sample_entry()


def test_an_entry_over_the_size_limit_is_refused_naming_it():
    with pytest.raises(
        LedgerError, match=f"ledger entry of app web deployment .* more than the limit of {MAX_ENTRY_BYTES}"
    ):
        encode_entry(sample_entry(spec={"blob": "x" * MAX_ENTRY_BYTES}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"outcome": "done"}, "outcome: expected one of running, succeeded, failed, rolled back, got 'done'"),
        ({"user": "eve\nroot"}, "user: expected text without control characters"),
        ({"deployment": "../x"}, "deployment: expected letters"),
        ({"spec": []}, "spec: expected an object"),
        ({"steps": [{"name": "x"}]}, r"steps: expected steps \{name, seconds, ok\}"),
    ],
)
def test_a_bad_entry_is_refused_naming_the_field(change, message):
    record = {**sample_entry().to_json(), **change}
    with pytest.raises(LedgerError, match=f"ledger entry web/0000000007: {message}"):
        decode_entry("web", "0000000007", json.dumps(record).encode())


@pytest.mark.parametrize("number", ["NaN", "-Infinity", "1e999"])
def test_numbers_json_does_not_have_are_refused(number):
    text = json.dumps({**sample_entry().to_json(), "spec": {"replicas": "NUMBER"}}).replace('"NUMBER"', number)
    with pytest.raises(LedgerError, match="ledger entry web/0000000007: not JSON"):
        decode_entry("web", "0000000007", text.encode())


@PROPERTY
@given(
    st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda value: json.dumps(value).encode()),
        st.dictionaries(st.sampled_from(ENTRY_KEYS), json_values).map(
            lambda change: json.dumps({**sample_entry().to_json(), **change}).encode()
        ),
    )
)
def test_property_any_node_data_decodes_to_an_entry_or_a_ledger_error(data):
    try:
        entry = decode_entry("web", "0000000007", data)
    except LedgerError:
        return
    assert decode_entry("web", "0000000007", encode_entry(entry)) == entry


@PROPERTY
@given(st.one_of(st.binary(max_size=200), json_values.map(lambda value: json.dumps(value).encode())))
def test_property_any_lock_data_describes_a_holder_on_one_printable_line(data):
    _holder, words = describe_holder(data)
    assert words.isprintable()
