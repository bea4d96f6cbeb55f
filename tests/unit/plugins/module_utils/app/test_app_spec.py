"""The app spec: parsing the app module's options, its version id, and the difference between two specs.

Named cases for each field's refusal (the message names the field), and
Hypothesis properties for the grammars: the image reference (real references
pass, latest, untagged and garbage do not), the health path (nothing it
accepts can break an HAProxy configuration line), and the version id (stable
across option order and instance counts, moved by any change of image).
"""

import copy
import hashlib
import json
import string

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.app.spec import (
    AppSpec,
    Constraint,
    SpecError,
    parse_health_path,
    parse_image,
    parse_spec,
)
from ansible_collections.dockyard.platform.plugins.module_utils.app.swarm import read_spec_label, service_labels
from hypothesis import given, settings
from hypothesis import strategies as st

PROPERTY = settings(max_examples=300, derandomize=True, deadline=None)
DIGEST = "sha256:" + "ab" * 32

WEB = {
    "name": "shop",
    "image": "registry.lab:5000/storefront/shop:git-4f2a9c1",
    "instances": 4,
    "cpus": 0.5,
    "mem": 256,
    "env": {"SHOP_LOG_LEVEL": "info", "WORKERS": 4},
    "args": ["--listen", ":8080"],
    "labels": {"com.example.team": "storefront"},
    "container_port": 8080,
    "service_port": 10080,
    "hosts": ["Shop.Example.com", "shop.example.com."],
    "health": {"path": "/healthz?full=1", "expect_status": 204, "body_contains": "ok", "interval": "2s"},
    "constraints": ["node.labels.zone==eu-1", "max_per_node=1", "spread=node.labels.rack"],
    "upgrade": {"minimum_health_capacity": 0.75, "maximum_over_capacity": 0.25, "drain_timeout": "45s"},
    "stop_grace_period": "15s",
    "registry_auth": {"username": "deployer", "password": "s3cr3t-pa55"},
}


def web(**changes) -> dict:
    options = copy.deepcopy(WEB)
    options.update(changes)
    return options


def refusal(options) -> str:
    with pytest.raises(SpecError) as raised:
        parse_spec(options)
    return str(raised.value)


# -- named cases ----------------------------------------------------------------------
def test_a_full_spec_parses_to_typed_normalised_values():
    spec = parse_spec(WEB)
    assert spec.hosts == ("shop.example.com",)
    assert spec.env == (("SHOP_LOG_LEVEL", "info"), ("WORKERS", "4"))
    assert spec.resources.cpus == 0.5 and spec.resources.mem_mib == 256
    assert spec.health.path == "/healthz?full=1" and spec.health.expect_status == 204
    assert spec.health.interval_ms == 2000 and spec.health.timeout_ms == 2000 and spec.health.failures == 3
    assert spec.upgrade.drain_timeout_ms == 45000 and spec.stop_grace_period_ms == 15000
    assert [constraint.text for constraint in spec.constraints] == [
        "max_per_node=1",
        "node.labels.zone==eu-1",
        "spread=node.labels.rack",
    ]
    assert spec.service_name == f"shop--{spec.version_id}" and len(spec.version_id) == 12


def test_the_defaults_are_marathons_and_the_platforms():
    spec = parse_spec({"name": "mailer", "image": "mailer:1.0", "health": {"command": "test -f /tmp/alive"}})
    assert spec.instances == 1 and spec.resources.cpus == 1.0 and spec.resources.mem_mib == 128
    health = spec.health
    assert (health.interval_ms, health.timeout_ms, health.grace_period_ms, health.failures) == (5000, 2000, 10000, 3)
    assert (spec.upgrade.minimum_health_capacity, spec.upgrade.maximum_over_capacity) == (1.0, 1.0)
    assert spec.upgrade.drain_timeout_ms == 30000 and spec.stop_grace_period_ms == 10000
    assert spec.container_port is None and spec.hosts == () and spec.constraints == ()


def test_options_ansible_leaves_unset_arrive_as_none_and_take_their_defaults():
    options = dict.fromkeys(WEB)
    options.update(name="mailer", image="mailer:1.0")
    assert parse_spec(options) == parse_spec({"name": "mailer", "image": "mailer:1.0"})


def test_to_dict_gives_back_the_same_spec_and_leaves_the_secret_out():
    spec = parse_spec(WEB)
    document = spec.to_dict()
    assert "registry_auth" not in document and "s3cr3t-pa55" not in repr(document)
    assert parse_spec(document) == spec
    assert document["upgrade"]["drain_timeout"] == "45s" and document["health"]["interval"] == "2s"


def test_the_registry_password_is_in_no_repr_or_error():
    spec = parse_spec(WEB)
    assert spec.registry_auth.password == "s3cr3t-pa55"
    assert "s3cr3t" not in repr(spec) and "s3cr3t" not in repr(spec.registry_auth)
    message = refusal(web(registry_auth={"username": "deployer", "password": "s3cr3t\x00"}))
    assert message.startswith("registry_auth.password:") and "s3cr3t" not in message


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"image": "registry.lab:5000/shop"}, "image: 'registry.lab:5000/shop' has no tag"),
        ({"image": "shop:latest"}, "image: 'shop:latest' uses the tag latest"),
        ({"image": "shop:1.0 "}, "image: expected an image reference"),
        ({"image": "Shop:1.0"}, "image: expected an image reference"),
        ({"image": "registry.lab:99999/shop:1"}, "image: 'registry.lab:99999/shop:1': registry port 99999"),
        ({"instances": -1}, "instances: expected a whole number 0-100000, got -1"),
        ({"instances": 1.5}, "instances: expected a whole number"),
        ({"instances": True}, "instances: expected a whole number"),
        ({"instances": "3"}, "instances: expected a whole number"),
        ({"mem": 5}, "mem: expected 6-1048576 MiB (Docker refuses less than 6 MiB), got 5"),
        ({"mem": 64.5}, "mem: expected whole MiB, got 64.5"),
        ({"cpus": 0}, "cpus: expected a number of CPUs above 0"),
        ({"cpus": -0.5}, "cpus: expected a number of CPUs above 0"),
        ({"cpus": 0.0001}, "cpus: expected at most three decimals"),
        ({"cpus": float("nan")}, "cpus: expected a number of CPUs above 0"),
        ({"name": "shop.web"}, "name: 'shop.web' cannot name a Swarm service"),
        ({"name": "a" * 50}, "name: 'aaaa"),
        ({"name": "-shop"}, "name: expected letters, digits"),
        ({"name": "a" * 48 + "."}, "name: 'aaaa"),  # Swarm's own pattern backtracks for ages on it
        ({"env": {"1BAD": "x"}}, "env: key '1BAD': expected a variable name"),
        ({"env": {"OK": True}}, "env.OK: expected a string (quote it in YAML), got True"),
        ({"env": {"OK": "a\x00b"}}, "env.OK: expected UTF-8 text without NUL"),
        ({"labels": {"org.dockyard.app": "x"}}, "labels: key 'org.dockyard.app': labels under org.dockyard."),
        ({"labels": {"dockyard.drain_timeout": "1s"}}, "labels: key 'dockyard.drain_timeout'"),
        ({"labels": {"team": "a\nb"}}, "labels.team: expected printable text"),
        ({"args": ["ok", 3]}, "args[1]: expected a string, got 3"),
        ({"args": ["\ud800"]}, "args[0]: expected UTF-8 text without NUL"),
        ({"args": ["x" * 40000]}, "args[0]: expected at most 32768 bytes"),
        ({"container_port": 0}, "container_port: expected a port number 1-65535, got 0"),
        ({"service_port": 70000}, "service_port: expected a port number 1-65535"),
        ({"hosts": ["shop.example.com", "bad host"]}, "hosts[1]: 'bad host' is not a DNS name"),
        ({"health": {"path": "/a b"}}, "health.path: expected a path starting with /"),
        ({"health": {"path": "health"}}, "health.path: expected a path starting with /"),
        ({"health": {"path": "/h", "command": "true"}}, "health: give exactly one of path"),
        ({"health": {"interval": "5s"}}, "health: give exactly one of path"),
        ({"health": {"path": "/h", "expect_status": 600}}, "health.expect_status: expected an HTTP status"),
        ({"health": {"path": "/h", "body_contains": "a b"}}, "health.body_contains: expected at most 128"),
        ({"health": {"path": "/h", "interval": "50ms"}}, "health.interval: must lie between 100ms and 3600s"),
        ({"health": {"path": "/h", "timeout": "soon"}}, "health.timeout: expected a duration such as 2s"),
        ({"health": {"path": "/h", "failures": 0}}, "health.failures: expected a whole number 1-100"),
        ({"health": {"path": "/h", "retries": 3}}, "health: unknown key(s) retries"),
        ({"health": {"command": "true", "expect_status": 200}}, "health.expect_status: belongs to an HTTP check"),
        ({"health": {"path": "/h"}, "container_port": None}, "health.path: an HTTP check needs container_port"),
        ({"container_port": None, "health": None}, "hosts: a routed app needs container_port"),
        ({"container_port": None, "health": None, "hosts": None}, "service_port: a routed app needs container_port"),
        ({"constraints": ["max_per_node=1", "zone==eu-1"]}, "constraints[1]: expected node.labels.<name>==<value>"),
        ({"constraints": ["node.labels.zone==eu 1"]}, "constraints[0]: value: expected letters"),
        ({"constraints": ["node.labels.==x"]}, "constraints[0]: node label: expected letters"),
        ({"constraints": ["max_per_node=0"]}, "constraints[0]: max_per_node must be 1-100000, got 0"),
        ({"constraints": ["max_per_node=1", "max_per_node=2"]}, "constraints: max_per_node given more than once"),
        ({"upgrade": {"minimum_health_capacity": 1.5}}, "upgrade.minimum_health_capacity: expected a share 0.0-1.0"),
        ({"upgrade": {"maximum_over_capacity": 0}}, "upgrade: minimum_health_capacity 1.0 with maximum_over"),
        ({"upgrade": {"drain_timeout": "2h"}}, "upgrade.drain_timeout: must lie between 0s and 3600s"),
        ({"upgrade": {"drain": "1s"}}, "upgrade: unknown key(s) drain"),
        ({"stop_grace_period": "-1s"}, "stop_grace_period: expected a duration"),
        ({"registry_auth": {"username": "u"}}, "registry_auth.password: expected a non-empty password"),
        ({"replicas": 3}, "app spec: unknown key(s) replicas"),
        ({"restart": -1}, "restart: expected a whole number 0-1000000, got -1"),
        ({"restart": 1_000_001}, "restart: expected a whole number 0-1000000, got 1000001"),
        ({"restart": True}, "restart: expected a whole number"),
        ({"restart": "1"}, "restart: expected a whole number"),
    ],
)
def test_bad_input_is_refused_naming_the_field(changes, message):
    assert refusal(web(**changes)).startswith(message)


@pytest.mark.parametrize("missing", ["name", "image"])
def test_name_and_image_are_required(missing):
    options = web()
    del options[missing]
    assert refusal(options) == f"{missing}: required"


def test_a_refusal_carries_the_field_for_callers_that_rename_it():
    with pytest.raises(SpecError) as raised:
        parse_spec(web(constraints=["max_per_node=1", "bad"]))
    assert raised.value.field == "constraints[1]" and raised.value.reason.startswith("expected node.labels.")


def test_constraints_are_kept_in_one_order_but_spreads_in_theirs():
    spec = parse_spec(
        web(constraints=["spread=node.labels.zone", "node.hostname!=n3", "spread=node.labels.rack", "max_per_node=2"])
    )
    assert [constraint.text for constraint in spec.constraints] == [
        "max_per_node=2",
        "node.hostname!=n3",
        "spread=node.labels.zone",
        "spread=node.labels.rack",
    ]
    assert spec.constraints[1] == Constraint("not_equals", "node.hostname", "n3")


# -- version id and diff --------------------------------------------------------------
def test_only_what_shapes_containers_moves_the_version_id():
    base = parse_spec(WEB)
    same_version = [
        {"instances": 40},
        {"hosts": ["other.example.com"]},
        {"service_port": 10081},
        {"upgrade": {**WEB["upgrade"], "minimum_health_capacity": 0.5}},
        {"registry_auth": {"username": "other", "password": "other"}},
    ]
    new_version = [
        {"image": "registry.lab:5000/storefront/shop:git-5e3b0d2"},
        {"args": ["--listen", ":9090"]},
        {"env": {"SHOP_LOG_LEVEL": "debug", "WORKERS": 4}},
        {"cpus": 1},
        {"mem": 512},
        {"labels": {}},
        {"container_port": 9090, "health": {**WEB["health"]}},
        {"health": {**WEB["health"], "interval": "3s"}},
        {"stop_grace_period": "20s"},
        {"upgrade": {**WEB["upgrade"], "drain_timeout": "10s"}},
        {"constraints": ["max_per_node=2"]},
    ]
    for changes in same_version:
        assert parse_spec(web(**changes)).version_id == base.version_id, changes
    for changes in new_version:
        assert parse_spec(web(**changes)).version_id != base.version_id, changes


def test_generation_0_keeps_every_version_id_from_before_restart_generations():
    # Computed before generations existed: an app deployed then must not roll when the module is upgraded.
    assert parse_spec(WEB).version_id == "880ae69bc191"
    assert parse_spec(web(restart=0)).version_id == "880ae69bc191"
    assert AppSpec(name="mailer", image="mailer:1.0").version_id == "02fac01041bf"
    assert "restart" not in parse_spec(WEB).to_dict()


def test_a_restart_generation_is_a_new_version_and_round_trips_through_the_ledger_and_the_label():
    restarted = parse_spec(web(restart=1))
    assert restarted.restart == 1 and restarted.version_id != "880ae69bc191"
    assert parse_spec(web(restart=2)).version_id != restarted.version_id
    document = restarted.to_dict()
    assert document["restart"] == 1
    assert parse_spec(json.loads(json.dumps(document))) == restarted  # a ledger entry's spec
    assert read_spec_label(service_labels(restarted)) == restarted


def test_diff_of_a_restart_names_the_generation_and_rolls():
    difference = parse_spec(WEB).diff(parse_spec(web(restart=1)))
    assert difference.changed == ("restart",)
    assert difference.before == {"restart": 0} and difference.after == {"restart": 1}
    assert difference.rolls and not difference.scales


def test_diff_of_equal_specs_is_unchanged():
    difference = parse_spec(WEB).diff(parse_spec(web(registry_auth=None)))
    assert difference.unchanged and not (difference.rolls or difference.scales or difference.routes)


def test_diff_says_scale_only_when_only_instances_change():
    difference = parse_spec(WEB).diff(parse_spec(web(instances=40)))
    assert difference.changed == ("instances",) and difference.before == {"instances": 4}
    assert difference.after == {"instances": 40}
    assert difference.scales and not difference.rolls and not difference.routes


def test_diff_says_route_only_when_only_routing_changes():
    difference = parse_spec(WEB).diff(parse_spec(web(hosts=["shop.example.com", "m.shop.example.com"])))
    assert difference.changed == ("hosts",) and difference.routes and not difference.rolls and not difference.scales


def test_diff_says_roll_when_the_version_changes_and_names_nested_fields():
    difference = parse_spec(WEB).diff(parse_spec(web(env={"SHOP_LOG_LEVEL": "debug", "WORKERS": 4}, instances=6)))
    assert difference.changed == ("env.SHOP_LOG_LEVEL", "instances")
    assert difference.before["env.SHOP_LOG_LEVEL"] == "info" and difference.after["env.SHOP_LOG_LEVEL"] == "debug"
    assert difference.rolls and difference.scales


def test_diff_of_upgrade_pacing_alone_neither_rolls_scales_nor_routes():
    difference = parse_spec(WEB).diff(parse_spec(web(upgrade={**WEB["upgrade"], "minimum_health_capacity": 0.5})))
    assert difference.changed == ("upgrade.minimum_health_capacity",)
    assert not (difference.unchanged or difference.rolls or difference.scales or difference.routes)


def test_diff_of_the_drain_window_rolls_it_is_on_every_container():
    difference = parse_spec(WEB).diff(parse_spec(web(upgrade={"minimum_health_capacity": 0.75})))
    assert difference.changed == ("upgrade.drain_timeout", "upgrade.maximum_over_capacity")
    assert difference.after["upgrade.drain_timeout"] == "30s" and difference.rolls


def test_diff_names_the_variable_an_empty_env_gains():
    difference = parse_spec(web(env=None)).diff(parse_spec(web(env={"DEBUG": "1"})))
    assert difference.changed == ("env.DEBUG",) and difference.before == {"env.DEBUG": None}


def test_diff_refuses_two_different_apps():
    with pytest.raises(ValueError, match="cannot compare app shop with app cart"):
        parse_spec(WEB).diff(parse_spec(web(name="cart")))


# -- properties: the image reference ---------------------------------------------------
lower = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
path_components = st.builds(
    lambda first, separator, second: first + separator + second if second else first,
    lower,
    st.sampled_from([".", "_", "__", "-", "--"]),
    st.one_of(st.just(""), lower),
)
registries = st.one_of(
    st.just(""),
    st.builds(lambda host, port: f"{host}.lab{port}/", lower, st.sampled_from(["", ":5000", ":443", ":1"])),
    st.just("localhost:5000/"),
)
tags = st.text(string.ascii_letters + string.digits + "_.-", min_size=1, max_size=30).filter(
    lambda tag: tag[0] not in ".-" and tag.lower() != "latest"
)
digests = st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda hexes: f"sha256:{hexes}")
pins = st.one_of(
    tags.map(lambda tag: f":{tag}"),
    digests.map(lambda digest: f"@{digest}"),
    st.tuples(tags, digests).map(lambda pair: f":{pair[0]}@{pair[1]}"),
)
references = st.builds(
    lambda registry, components, pin: registry + "/".join(components) + pin,
    registries,
    st.lists(path_components, min_size=1, max_size=3),
    pins,
)


@PROPERTY
@given(references)
def test_real_image_references_with_a_tag_or_digest_are_accepted(reference):
    assert parse_image(reference) == reference


@PROPERTY
@given(st.builds(lambda registry, name, pin: registry + name, registries, path_components, st.just("")))
def test_untagged_references_are_refused(reference):
    with pytest.raises(SpecError, match="has no tag"):
        parse_image(reference)


@PROPERTY
@given(registries, path_components, st.sampled_from(["latest", "LATEST", "Latest"]), st.booleans())
def test_latest_is_refused_even_beside_a_digest(registry, name, tag, with_digest):
    reference = f"{registry}{name}:{tag}" + (f"@{DIGEST}" if with_digest else "")
    with pytest.raises(SpecError, match="uses the tag latest"):
        parse_image(reference)


@PROPERTY
@given(st.one_of(st.text(max_size=60), st.binary(max_size=20), st.integers(), st.none(), st.lists(st.text())))
def test_garbage_is_refused_with_a_spec_error_or_is_a_pinned_reference(value):
    try:
        accepted = parse_image(value)
    except SpecError as error:
        assert error.field == "image"
        return
    assert (":" in accepted or "@sha256:" in accepted) and accepted.isascii() and accepted.isprintable()
    assert not any(character in accepted for character in " \t\n\"'#\\$")


@pytest.mark.parametrize(
    "reference",
    [
        "registry.lab:5000/team/app:1.4.2",
        "localhost:5000/app:git-4f2a9c1",
        "app@" + DIGEST,
        "library/redis:7.2-alpine",
        "Registry.Lab/app:v1",
        "a.b.c/x__y/z-w:1.0.0_rc1",
    ],
)
def test_named_real_references_pass(reference):
    assert parse_image(reference) == reference


@pytest.mark.parametrize(
    "reference",
    ["", ":1", "app:", "app@sha256:abc", "app:1@sha256:" + "AB" * 32, "app:-1", "UPPER/app:1", "app:1\n", "a//b:1"],
)
def test_named_bad_references_fail(reference):
    with pytest.raises(SpecError):
        parse_image(reference)


# -- properties: the health path -------------------------------------------------------
INERT = set(string.ascii_letters + string.digits + "-._~!&()*+,;=:@/%?")
near_misses = st.builds(
    lambda head, bad, tail: head + bad + tail,
    st.sampled_from(["", "/", "/health", "/h?x=1"]),
    st.sampled_from([" ", "\t", "\n", "\r", "\x00", '"', "'", "#", "\\", "$", "{", "\u2028", "\u00e9", "\x7f"]),
    st.text(max_size=20),
)


@PROPERTY
@given(st.one_of(st.text(max_size=80), near_misses, st.text(alphabet=sorted(INERT), max_size=600)))
def test_no_accepted_health_path_can_break_an_haproxy_line(value):
    try:
        path = parse_health_path(value)
    except SpecError as error:
        assert error.field == "health.path"
        return
    assert path.startswith("/") and len(path) <= 512 and set(path) <= INERT
    line = f"    http-check send meth GET uri {path}"
    assert line.split() == ["http-check", "send", "meth", "GET", "uri", path]


# -- properties: the version id --------------------------------------------------------
@PROPERTY
@given(st.permutations(list(WEB)), st.permutations(sorted(WEB["env"])), st.integers(0, 100_000))
def test_the_version_id_ignores_option_order_and_instance_counts(keys, env_keys, instances):
    reordered = {key: WEB[key] for key in keys}
    reordered["env"] = {key: WEB["env"][key] for key in env_keys}
    reordered["instances"] = instances
    assert parse_spec(reordered).version_id == parse_spec(WEB).version_id


@PROPERTY
@given(tags)
def test_any_other_image_gives_another_version_id(tag):
    other = f"registry.lab:5000/storefront/shop:{tag}"
    spec = parse_spec(web(image=other))
    assert (spec.version_id == parse_spec(WEB).version_id) == (other == WEB["image"])


def test_the_version_id_is_a_digest_of_canonical_json_of_the_container_shape():
    # Pinned by hand: the id names running services, so it must not depend on hash seeds or Python versions.
    shape = (
        '{"args":[],"constraints":[],"container_port":null,"cpus":1.0,"drain_timeout":30000,"env":{},'
        '"health":null,"image":"mailer:1.0","labels":{},"mem":128,"stop_grace_period":10000}'
    )
    expected = hashlib.sha256(shape.encode("ascii")).hexdigest()[:12]
    assert AppSpec(name="mailer", image="mailer:1.0").version_id == expected
    assert parse_spec({"name": "mailer", "image": "mailer:1.0", "instances": 7}).version_id == expected


# -- properties: keys and constraints ---------------------------------------------------
KEY_CHARACTERS = set(string.ascii_letters + string.digits + "._/-")
hostile_text = st.one_of(st.text(max_size=30), near_misses, st.text(alphabet=sorted(KEY_CHARACTERS), max_size=140))


@PROPERTY
@given(st.dictionaries(hostile_text, st.one_of(st.text(max_size=10), st.integers(), st.none()), max_size=3))
def test_accepted_env_and_label_keys_are_plain_words(pairs):
    for option in ("env", "labels"):
        try:
            spec = parse_spec(web(**{option: pairs}))
        except SpecError as error:
            assert error.field.startswith(option)
            continue
        for key, value in getattr(spec, option):
            assert set(key) <= KEY_CHARACTERS and 0 < len(key) <= 255 and isinstance(value, str)
            assert not key.startswith(("org.dockyard.", "dockyard."))


constraint_texts = st.one_of(
    hostile_text,
    st.builds(
        lambda head, middle, tail: head + middle + tail,
        st.sampled_from(["node.labels.", "node.hostname", "max_per_node=", "spread=node.labels."]),
        hostile_text,
        st.sampled_from(["", "==x", "!=x", "==", "=1"]),
    ),
)


@PROPERTY
@given(constraint_texts)
def test_accepted_constraints_are_swarm_words_and_read_back_the_same(text):
    try:
        spec = parse_spec(web(constraints=[text]))
    except SpecError as error:
        assert error.field == "constraints[0]"
        return
    (constraint,) = spec.constraints
    assert constraint.text == text
    assert set(text) <= set(string.ascii_letters + string.digits + "._-=!")


def test_a_spec_too_large_for_a_service_label_is_refused_before_anything_changes():
    values = {f"VALUE_{number}": "x" * 30_000 for number in range(5)}
    with pytest.raises(SpecError, match=r"^app spec: [0-9]+ bytes of JSON, more than 131072"):
        parse_spec({"name": "big", "image": "lab/big:1", "env": values})
    assert parse_spec({"name": "big", "image": "lab/big:1", "env": dict(list(values.items())[:4])}).env
