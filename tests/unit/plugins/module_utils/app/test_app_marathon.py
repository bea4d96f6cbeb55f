"""Marathon app definitions translated to the app spec.

The example definitions in docs/examples/marathon/ translate completely;
fields with no equivalent are named (and fail in strict mode before anything
changes); bad values fail naming the Marathon field; each constraint operator
becomes what Swarm can do or is named. A Hypothesis property writes specs made
of supported fields as Marathon definitions and checks the translation gives
the same spec back.
"""

import json
import pathlib
import string

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.app.marathon import translate
from ansible_collections.dockyard.platform.plugins.module_utils.app.spec import SpecError, parse_spec
from hypothesis import given, settings
from hypothesis import strategies as st

PROPERTY = settings(max_examples=200, derandomize=True, deadline=None)
EXAMPLES = pathlib.Path(__file__).parents[5] / "docs" / "examples" / "marathon"


def example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def minimal(**fields) -> dict:
    return {"id": "/shop", "container": {"docker": {"image": "shop:1.0"}}, **fields}


def refusal(definition, **keywords) -> str:
    with pytest.raises(SpecError) as raised:
        translate(definition, **keywords)
    return str(raised.value)


# -- the examples ---------------------------------------------------------------------
def test_the_web_example_translates_completely():
    translation = translate(json.dumps(example("web")))
    assert translation.unsupported == ()
    assert translation.spec.to_dict() == {
        "name": "shop",
        "image": "registry.lab:5000/storefront/shop:git-4f2a9c1",
        "instances": 3,
        "cpus": 0.5,
        "mem": 256,
        "env": {"SHOP_CONFIG_PREFIX": "config/shop/", "SHOP_LOG_LEVEL": "info"},
        "args": ["--listen", ":8080"],
        "labels": {"com.example.team": "storefront"},
        "container_port": 8080,
        "service_port": 10080,
        "hosts": ["shop.example.com", "www.shop.example.com"],
        "health": {
            "path": "/healthz",
            "expect_status": 200,
            "interval": "5s",
            "timeout": "2s",
            "grace_period": "20s",
            "failures": 3,
        },
        "constraints": [
            "max_per_node=1",
            "node.labels.disk==ssd",
            "node.labels.stage!=canary",
            "node.labels.stage!=maintenance",
            "spread=node.labels.zone",
        ],
        "upgrade": {"minimum_health_capacity": 0.75, "maximum_over_capacity": 0.25, "drain_timeout": "30s"},
        "stop_grace_period": "15s",
    }
    assert translation.notes == (
        "marathon_app.healthChecks[0]: Marathon counts any status 200-399 as healthy; the spec expects 200",
    )


def test_the_worker_example_translates_completely():
    translation = translate(example("worker"))
    spec = translation.spec
    assert translation.unsupported == ()
    assert spec.name == "mailer" and spec.image.endswith("@sha256:" + spec.image.split("@sha256:")[1])
    assert spec.container_port is None and spec.hosts == () and spec.service_port is None
    assert spec.health.command == "test -f /tmp/mailer.alive" and spec.health.path is None
    assert (spec.health.interval_ms, spec.health.timeout_ms, spec.health.grace_period_ms) == (10000, 5000, 30000)
    assert [constraint.text for constraint in spec.constraints] == ["max_per_node=2", "node.labels.role==batch"]
    assert any("$HOST/$PORT0" in note for note in translation.notes)


def test_the_modules_own_options_join_the_translation():
    translation = translate(
        example("web"),
        options={
            "registry_auth": {"username": "deployer", "password": "s3cr3t"},
            "upgrade": {"drain_timeout": "1m", "minimum_health_capacity": None},
            "stop_grace_period": None,
        },
    )
    assert translation.spec.registry_auth.username == "deployer"
    assert translation.spec.upgrade.drain_timeout_ms == 60000
    assert translation.spec.upgrade.minimum_health_capacity == 0.75


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hosts": ["other.example.com"]}, "hosts: given both as an option and by marathon_app.labels.HAPROXY_0_VHOST"),
        (
            {"upgrade": {"maximum_over_capacity": 0.5}},
            "upgrade.maximum_over_capacity: given both as an option and by marathon_app.upgradeStrategy",
        ),
        ({"upgrade": {"drain_timeout": "2h"}}, "upgrade.drain_timeout: must lie between"),
    ],
)
def test_an_option_the_definition_also_sets_or_a_bad_option_is_refused_by_its_own_name(options, message):
    assert refusal(example("web"), options=options).startswith(message)


# -- what has no equivalent -----------------------------------------------------------
UNSUPPORTED = minimal(
    id="/prod/shop",
    cmd="python -m http.server",
    env={"TOKEN": {"secret": "token"}, "PLAIN": "1"},
    container={
        "type": "DOCKER",
        "volumes": [{"containerPath": "/data", "hostPath": "/srv", "mode": "RW"}],
        "docker": {
            "image": "shop:1.0",
            "network": "HOST",
            "privileged": True,
            "portMappings": [
                {"containerPort": 8080, "hostPort": 31000, "protocol": "udp"},
                {"containerPort": 9090},
            ],
        },
    },
    healthChecks=[{"protocol": "TCP"}, {"protocol": "HTTP"}],
    upgradeStrategy={"minimumHealthCapacity": 0.5, "killOld": True},
    constraints=[["rack", "LIKE", "r[1-3]"], ["rack", "UNIQUE"], ["@zone", "GROUP_BY"], ["rack", "CLUSTER"]],
    disk=512,
    fetch=[{"uri": "https://example.com/a.tgz"}],
    # Marathon's defaults and its reported state ask for nothing:
    gpus=0,
    backoffFactor=1.15,
    ports=[],
    version="2015-06-01T10:00:00.000Z",
    tasksRunning=3,
)
UNSUPPORTED_FIELDS = [
    "marathon_app.id",
    "marathon_app.env.TOKEN",
    "marathon_app.container.docker.network",
    "marathon_app.container.docker.privileged",
    "marathon_app.container.volumes",
    "marathon_app.container.docker.portMappings[1]",
    "marathon_app.container.docker.portMappings[0].hostPort",
    "marathon_app.container.docker.portMappings[0].protocol",
    "marathon_app.healthChecks[1]",
    "marathon_app.healthChecks[0].protocol",
    "marathon_app.upgradeStrategy.killOld",
    "marathon_app.constraints[0]",
    "marathon_app.constraints[1]",
    "marathon_app.constraints[2]",
    "marathon_app.constraints[3]",
    "marathon_app.cmd",
    "marathon_app.disk",
    "marathon_app.fetch",
]


def test_fields_with_no_equivalent_are_named_and_left_out_when_not_strict():
    translation = translate(UNSUPPORTED, strict=False)
    named = [entry.split(": ")[0] for entry in translation.unsupported]
    assert sorted(named) == sorted(UNSUPPORTED_FIELDS)
    spec = translation.spec
    assert spec.name == "shop" and spec.env == (("PLAIN", "1"),) and spec.container_port == 8080
    assert spec.health is None and spec.constraints == () and spec.upgrade.minimum_health_capacity == 0.5


def test_strict_mode_fails_naming_every_field_with_no_equivalent():
    message = refusal(UNSUPPORTED)
    assert message.startswith("marathon_app: fields with no equivalent (marathon_strict is on; nothing was changed)")
    for field in UNSUPPORTED_FIELDS:
        assert f"{field}: " in message


def test_strict_mode_passes_marathons_defaults_and_state():
    definition = minimal(disk=0, gpus=0, executor="", requirePorts=False, uris=[], version="x", deployments=[])
    assert translate(definition).unsupported == ()


# -- bad values -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ("{", "marathon_app: invalid JSON"),
        ("[]", "marathon_app: expected a Marathon app definition (a JSON object), got list"),
        ({"container": {"docker": {"image": "shop:1"}}}, "marathon_app.id: required"),
        (minimal(container={"docker": {}}), "marathon_app.container.docker.image: required"),
        (minimal(container={"docker": {"image": "shop"}}), "marathon_app.container.docker.image: 'shop' has no tag"),
        (minimal(container={"docker": {"image": "shop:latest"}}), "marathon_app.container.docker.image: 'shop:latest'"),
        (minimal(instances=-2), "marathon_app.instances: expected a whole number"),
        (minimal(mem=4), "marathon_app.mem: expected 6-1048576 MiB"),
        (minimal(cpus=0), "marathon_app.cpus: expected a number of CPUs above 0"),
        (minimal(id="/shop.web"), "marathon_app.id: 'shop.web' cannot name a Swarm service"),
        (minimal(env={"BAD-KEY": "1"}), "marathon_app.env: key 'BAD-KEY'"),
        (minimal(labels={"team": "a\nb"}), "marathon_app.labels.team: expected printable text"),
        (minimal(labels={"HAPROXY_0_VHOST": "shop.example.com,bad host"}), "marathon_app.labels.HAPROXY_0_VHOST[1]"),
        (
            minimal(
                container={"docker": {"image": "shop:1", "portMappings": [{"containerPort": 8080}]}},
                healthChecks=[{"path": "/health check"}],
            ),
            "marathon_app.healthChecks[0].path: expected a path starting with /",
        ),
        (
            minimal(healthChecks=[{"path": "/h"}]),
            "marathon_app.healthChecks[0].path: an HTTP check needs container_port",
        ),
        (
            minimal(healthChecks=[{"protocol": "COMMAND", "command": {"value": "true"}, "intervalSeconds": "5"}]),
            "marathon_app.healthChecks[0].intervalSeconds: expected whole seconds",
        ),
        (minimal(upgradeStrategy={"minimumHealthCapacity": 2}), "marathon_app.upgradeStrategy.minimumHealthCapacity"),
        (
            minimal(constraints=[["hostname", "UNIQUE"], ["zone", "CLUSTER", "eu-1"], ["zone", "CLUSTER", "eu 2"]]),
            "marathon_app.constraints[2]: value: expected letters",
        ),
        (minimal(constraints=[["hostname", "MAX_PER", "two"]]), "marathon_app.constraints[0]: MAX_PER needs a whole"),
        (
            minimal(constraints=[["hostname", "MAX_PER", "\u00b2"]]),
            "marathon_app.constraints[0]: MAX_PER needs a whole",
        ),
        (minimal(constraints=[["hostname", "MAX_PER", "0"]]), "marathon_app.constraints[0]: max_per_node must be 1-"),
        (minimal(constraints=[["hostname", "NEAR", "x"]]), "marathon_app.constraints[0]: unknown operator 'NEAR'"),
        (minimal(constraints=[["hostname"]]), "marathon_app.constraints[0]: expected [field, operator]"),
        (minimal(taskKillGracePeriodSeconds=-1), "marathon_app.taskKillGracePeriodSeconds: expected whole seconds"),
    ],
)
def test_bad_values_fail_naming_the_marathon_field(definition, message):
    assert refusal(definition, strict=False).startswith(message)


def test_a_health_check_takes_marathons_defaults_for_what_it_leaves_out():
    definition = minimal(
        container={"docker": {"image": "shop:1", "portMappings": [{"containerPort": 8080}]}},
        healthChecks=[{"protocol": "MESOS_HTTP"}],
    )
    health = translate(definition).spec.health
    assert health.path == "/" and health.failures == 3
    assert (health.grace_period_ms, health.interval_ms, health.timeout_ms) == (300_000, 60_000, 20_000)


def test_a_check_that_never_replaces_a_task_is_named():
    definition = minimal(
        healthChecks=[{"protocol": "COMMAND", "command": {"value": "true"}, "maxConsecutiveFailures": 0}]
    )
    assert refusal(definition).startswith("marathon_app: fields with no equivalent")
    assert "marathon_app.healthChecks[0].maxConsecutiveFailures: 0" in refusal(definition)


# -- constraints ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        (["hostname", "UNIQUE"], ["max_per_node=1"]),
        (["@hostname", "MAX_PER", "3"], ["max_per_node=3"]),
        (["hostname", "CLUSTER", "node-1"], ["node.hostname==node-1"]),
        (["hostname", "LIKE", "node-1"], ["node.hostname==node-1"]),
        (["hostname", "UNLIKE", "node-3|node-4"], ["node.hostname!=node-3", "node.hostname!=node-4"]),
        (["hostname", "GROUP_BY"], []),
        (["zone", "CLUSTER", "eu-1"], ["node.labels.zone==eu-1"]),
        (["zone", "IS", "eu-1"], ["node.labels.zone==eu-1"]),
        (["zone", "LIKE", "^eu-1$"], ["node.labels.zone==eu-1"]),
        (["zone", "LIKE", "eu\\.west"], ["node.labels.zone==eu.west"]),
        (["zone", "UNLIKE", "(eu-2|eu-3)"], ["node.labels.zone!=eu-2", "node.labels.zone!=eu-3"]),
        (["zone", "GROUP_BY", "3"], ["spread=node.labels.zone"]),
    ],
)
def test_constraints_become_what_swarm_can_do(constraint, expected):
    translation = translate(minimal(constraints=[constraint]))
    assert sorted(item.text for item in translation.spec.constraints) == sorted(expected)


@pytest.mark.parametrize(
    ("constraint", "why"),
    [
        (["zone", "LIKE", "eu-.*"], "Swarm constraints take no regular expressions"),
        (["zone", "LIKE", "eu.west"], "Swarm constraints take no regular expressions"),  # '.' matches any character
        (["zone", "LIKE", "eu-1|eu-2"], "Swarm constraints take no regular expressions"),  # Swarm cannot OR
        (["zone", "UNLIKE", "eu-[23]"], "Swarm constraints take no regular expressions"),
        (["rack", "UNIQUE"], "UNIQUE on a node attribute has no equivalent"),
        (["rack", "MAX_PER", "2"], "MAX_PER on a node attribute has no equivalent"),
        (["hostname", "CLUSTER"], "CLUSTER without a value"),
        (["@region", "IS", "eu"], "@region (a Mesos fault domain) has no equivalent"),
    ],
)
def test_constraints_swarm_cannot_express_are_named(constraint, why):
    translation = translate(minimal(constraints=[constraint]), strict=False)
    assert translation.spec.constraints == ()
    assert translation.unsupported[0].startswith("marathon_app.constraints[0]: ") and why in translation.unsupported[0]


def test_unique_and_max_per_on_hosts_keep_the_smaller_maximum():
    translation = translate(minimal(constraints=[["hostname", "MAX_PER", "3"], ["hostname", "UNIQUE"]]))
    assert [constraint.text for constraint in translation.spec.constraints] == ["max_per_node=1"]


# -- property: translation round trips ------------------------------------------------
words = st.from_regex(r"[a-z][a-z0-9]{0,8}(?:-[a-z0-9]{1,4})?", fullmatch=True)
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,12}", fullmatch=True)
free_text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20)
seconds = st.integers(1, 3600)
constraints = st.one_of(
    st.builds(lambda label, value: f"node.labels.{label}=={value}", names, names),
    st.builds(lambda label, value: f"node.labels.{label}!={value}", names, names),
    st.builds(lambda host: f"node.hostname=={host}", names),
    st.builds(lambda host: f"node.hostname!={host}", names),
    st.integers(1, 50).map(lambda count: f"max_per_node={count}"),
    st.builds(lambda label: f"spread=node.labels.{label}", names),
)
http_checks = st.fixed_dictionaries(
    {"path": st.text(alphabet="abc/-._~!&()*+,;=:@%?", max_size=30).map(lambda tail: "/" + tail)},
)
command_checks = st.fixed_dictionaries(
    {"command": free_text.filter(lambda text: bool(text.strip()))},
)


def _with_timing(check, interval, timeout, grace, failures):
    return {
        **check,
        "interval": f"{interval}s",
        "timeout": f"{timeout}s",
        "grace_period": f"{grace}s",
        "failures": failures,
    }


healths = st.builds(
    _with_timing, st.one_of(http_checks, command_checks), seconds, seconds, st.integers(0, 3600), st.integers(1, 100)
)
capacities = st.tuples(st.integers(0, 100), st.integers(0, 100)).filter(lambda pair: pair != (100, 0))


@st.composite
def supported_specs(draw) -> dict:
    """The options of a spec that uses only what Marathon can say."""
    options = {
        "name": draw(words),
        "image": draw(st.sampled_from(["shop:1.0", "registry.lab:5000/team/shop:git-abc", "x/y@sha256:" + "a" * 64])),
        "instances": draw(st.integers(0, 500)),
        "cpus": draw(st.integers(1, 8000)) / 1000,
        "mem": draw(st.integers(6, 65536)),
        "env": draw(st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True), free_text, max_size=4)),
        "args": draw(st.lists(free_text, max_size=4)),
        "labels": draw(
            st.dictionaries(
                st.from_regex(r"com\.example\.[a-z]{1,8}", fullmatch=True),
                st.text(string.ascii_letters + " .-", max_size=10),
                max_size=3,
            )
        ),
        "constraints": draw(
            st.lists(constraints, max_size=4).filter(lambda items: sum("max_per" in i for i in items) <= 1)
        ),
        "stop_grace_period": f"{draw(st.integers(0, 600))}s",
    }
    least, over = draw(capacities)
    options["upgrade"] = {"minimum_health_capacity": least / 100, "maximum_over_capacity": over / 100}
    if draw(st.booleans()):
        options["container_port"] = draw(st.integers(1, 65535))
        options["service_port"] = draw(st.one_of(st.none(), st.integers(1, 65535)))
        options["hosts"] = draw(st.lists(st.builds(lambda a, b: f"{a}.{b}.example", words, words), max_size=3))
    health = draw(st.one_of(st.none(), healths))
    if health is not None and ("command" in health or "container_port" in options):
        options["health"] = health
    return options


def _marathon_constraint(text: str) -> list:
    """The Marathon constraint that says what one of the spec's constraints says."""
    if text.startswith("max_per_node="):
        count = text.split("=")[1]
        return ["hostname", "UNIQUE"] if count == "1" else ["hostname", "MAX_PER", count]
    if text.startswith("spread=node.labels."):
        return [text[len("spread=node.labels.") :], "GROUP_BY"]
    attribute, value = text.split("==") if "==" in text else text.split("!=")
    field = "hostname" if attribute == "node.hostname" else attribute[len("node.labels.") :]
    if "==" in text:
        return [field, "CLUSTER", value]
    return [field, "UNLIKE", value.replace(".", "\\.")]


def as_marathon(options: dict) -> dict:
    """A Marathon app definition of a spec's options, written by hand from Marathon's documentation."""
    docker = {"image": options["image"], "network": "BRIDGE"}
    labels = dict(options["labels"])
    if "container_port" in options:
        docker["portMappings"] = [
            {"containerPort": options["container_port"], "hostPort": 0, "servicePort": options["service_port"] or 0}
        ]
        if options["hosts"]:
            labels["HAPROXY_0_VHOST"] = ",".join(options["hosts"])
    definition = {
        "id": f"/{options['name']}",
        "instances": options["instances"],
        "cpus": options["cpus"],
        "mem": options["mem"],
        "env": options["env"],
        "args": options["args"],
        "labels": labels,
        "container": {"type": "DOCKER", "docker": docker},
        "upgradeStrategy": {
            "minimumHealthCapacity": options["upgrade"]["minimum_health_capacity"],
            "maximumOverCapacity": options["upgrade"]["maximum_over_capacity"],
        },
        "constraints": [_marathon_constraint(text) for text in options["constraints"]],
        "taskKillGracePeriodSeconds": int(options["stop_grace_period"][:-1]),
    }
    health = options.get("health")
    if health:
        check = (
            {"protocol": "HTTP", "path": health["path"], "portIndex": 0}
            if "path" in health
            else {"protocol": "COMMAND", "command": {"value": health["command"]}}
        )
        check.update(
            intervalSeconds=int(health["interval"][:-1]),
            timeoutSeconds=int(health["timeout"][:-1]),
            gracePeriodSeconds=int(health["grace_period"][:-1]),
            maxConsecutiveFailures=health["failures"],
        )
        definition["healthChecks"] = [check]
    return definition


@PROPERTY
@given(supported_specs())
def test_supported_fields_round_trip_through_marathon(options):
    translation = translate(json.dumps(as_marathon(options)))
    assert translation.unsupported == ()
    assert translation.spec == parse_spec(options)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
marathon_keys = st.sampled_from(
    [
        *("id", "instances", "cpus", "mem", "env", "args", "labels", "container", "healthChecks", "constraints"),
        *("upgradeStrategy", "taskKillGracePeriodSeconds", "cmd", "disk", "version"),
    ]
)


@PROPERTY
@given(st.dictionaries(marathon_keys, json_values, max_size=4), st.booleans())
def test_whatever_a_definition_holds_the_translation_gives_a_spec_or_a_spec_error(changes, strict):
    try:
        translation = translate(json.dumps({**example("web"), **changes}), strict=strict)
    except SpecError as error:
        assert error.field.startswith("marathon_app")
        return
    assert translation.spec == parse_spec(translation.spec.to_dict())


def test_a_definition_that_is_not_utf8_is_refused():
    assert refusal(b'{"id": "/\xff"}') == "marathon_app: not UTF-8"
