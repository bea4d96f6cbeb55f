"""service_spec(): the Swarm service of one app version, from its AppSpec (pure; the real Swarm is in
tests/integration/app/test_swarm.py).

Named cases for every mapping, secrets kept out of the labels and reprs, and a
Hypothesis property: whatever labels and env an app gives, nothing it writes
lands under the platform's own org.dockyard. labels, and all of it passes through.
"""

import json

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.app.spec import SpecError, parse_spec
from ansible_collections.dockyard.platform.plugins.module_utils.app.swarm import (
    SPEC_LABEL,
    SwarmClient,
    SwarmError,
    container_labels,
    read_spec_label,
    service_name,
    service_spec,
)
from ansible_collections.dockyard.platform.plugins.module_utils.registrator.readiness import parse_http_check
from hypothesis import given, settings
from hypothesis import strategies as st

PROPERTY = settings(max_examples=300, derandomize=True, deadline=None)
SECOND = 1_000_000_000
PASSWORD = "s3cr3t-pa55-Zq8"

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
    "hosts": ["shop.example.com"],
    "health": {"path": "/healthz", "interval": "2s"},
    "constraints": ["node.labels.zone==eu-1", "node.hostname!=node-3", "max_per_node=2", "spread=node.labels.rack"],
    "upgrade": {"drain_timeout": "45s"},
    "stop_grace_period": "15s",
    "registry_auth": {"username": "deployer", "password": PASSWORD},
}
PLATFORM_LABELS = {
    "org.dockyard.app",
    "org.dockyard.version",
    "org.dockyard.port",
    "org.dockyard.drain_timeout",
    "org.dockyard.stop_signal",
}


def spec_of(**changes):
    return parse_spec({**WEB, **changes})


def container_of(parameters: dict) -> dict:
    return parameters["task_template"]["ContainerSpec"]


# -- named cases ----------------------------------------------------------------------
def test_the_service_is_named_after_the_app_and_its_version():
    spec = spec_of()
    parameters = service_spec(spec, 3)
    assert parameters["name"] == service_name(spec) == f"shop--{spec.version_id}"
    assert parameters["mode"] == {"Replicated": {"Replicas": 3}}


def test_the_container_runs_the_image_with_its_args_and_env():
    container = container_of(service_spec(spec_of(), 1))
    assert container["Image"] == WEB["image"]
    assert container["Args"] == ["--listen", ":8080"]
    assert container["Env"] == ["SHOP_LOG_LEVEL=info", "WORKERS=4"]


def test_the_containers_carry_what_the_registrator_reads_beside_the_apps_own_labels():
    spec = spec_of()
    assert container_of(service_spec(spec, 1))["Labels"] == {
        "com.example.team": "storefront",
        "org.dockyard.app": "shop",
        "org.dockyard.version": spec.version_id,
        "org.dockyard.port": "8080",
        "org.dockyard.drain_timeout": "45s",
        "org.dockyard.stop_signal": "SIGTERM",
        # HAProxy's check, for the registrator to pass before it registers an instance.
        "org.dockyard.http_check": '{"expect_status":200,"host":"shop.example.com","interval_ms":2000,'
        '"path":"/healthz","timeout_ms":2000}',
    }


def test_the_http_check_label_is_what_haproxy_sends_and_what_the_registrator_reads():
    spec = spec_of(
        hosts=["api.example.com", "shop.example.com"],
        health={"path": "/ready?deep=1", "expect_status": 204, "body_contains": "up", "timeout": "750ms"},
    )
    raw = container_labels(spec)["org.dockyard.http_check"]
    assert json.loads(raw) == {
        "path": "/ready?deep=1",
        "expect_status": 204,
        "body_contains": "up",
        "host": "api.example.com",
        "interval_ms": 5000,
        "timeout_ms": 750,
    }
    # Compact, sorted, and read back as it was written.
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"))
    assert parse_http_check(raw).label() == raw


def test_an_app_without_hosts_is_checked_with_its_name_as_the_host():
    spec = spec_of(name="Shop_EU", hosts=[])
    assert parse_http_check(container_labels(spec)["org.dockyard.http_check"]).host == "Shop_EU"


def test_a_command_check_or_none_gives_no_http_check_label():
    for health in ({"command": "test -f /www/index.html"}, None):
        assert "org.dockyard.http_check" not in container_labels(spec_of(health=health))


def test_an_app_without_a_port_has_no_port_label_and_publishes_nothing():
    parameters = service_spec(parse_spec({"name": "worker", "image": "worker:2"}), 1)
    assert "org.dockyard.port" not in container_of(parameters)["Labels"]
    assert "endpoint_spec" not in parameters


def test_every_stop_is_a_drain_then_the_apps_own_grace():
    container = container_of(service_spec(spec_of(), 1))
    assert container["StopSignal"] == "SIGURG"
    assert container["StopGracePeriod"] == (45 + 15) * SECOND


def test_cpus_and_memory_are_both_limits_and_reservations():
    resources = service_spec(spec_of(cpus=0.125, mem=6), 1)["task_template"]["Resources"]
    expected = {"NanoCPUs": 125_000_000, "MemoryBytes": 6 * 1024 * 1024}
    assert resources == {"Limits": expected, "Reservations": expected}


def test_the_port_is_published_in_host_mode_on_a_port_docker_picks():
    assert service_spec(spec_of(), 1)["endpoint_spec"] == {
        "Mode": "dnsrr",
        "Ports": [{"Protocol": "tcp", "TargetPort": 8080, "PublishMode": "host"}],
    }


def test_placement_follows_the_constraints():
    assert service_spec(spec_of(), 1)["task_template"]["Placement"] == {
        "Constraints": ["node.hostname!=node-3", "node.labels.zone==eu-1"],
        "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.rack"}}],
        "MaxReplicas": 2,
    }
    assert service_spec(spec_of(constraints=[]), 1)["task_template"]["Placement"] == {
        "Constraints": [],
        "Preferences": [],
    }


def test_tasks_that_exit_are_replaced_after_a_delay_and_nothing_rolls_them():
    parameters = service_spec(spec_of(), 1)
    assert parameters["task_template"]["RestartPolicy"] == {
        "Condition": "any",
        "Delay": 5 * SECOND,
        "MaxAttempts": 0,
    }
    assert "update_config" not in parameters and "rollback_config" not in parameters


def test_a_command_check_becomes_dockers_healthcheck():
    spec = spec_of(
        health={"command": "test -f /tmp/alive", "interval": "3s", "timeout": "1500ms", "grace_period": "20s"}
    )
    assert container_of(service_spec(spec, 1))["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test -f /tmp/alive"],
        "Interval": 3 * SECOND,
        "Timeout": 1_500_000_000,
        "StartPeriod": 20 * SECOND,
        "Retries": 3,
    }


@pytest.mark.parametrize("health", [{"path": "/healthz"}, None])
def test_an_http_check_is_the_routers_and_leaves_dockers_alone(health):
    assert "Healthcheck" not in container_of(service_spec(spec_of(health=health), 1))


def test_the_service_labels_hold_the_spec_to_read_back():
    spec = spec_of()
    labels = service_spec(spec, 4)["labels"]
    assert labels["org.dockyard.app"] == "shop" and labels["org.dockyard.version"] == spec.version_id
    assert read_spec_label(labels) == spec
    assert json.loads(labels[SPEC_LABEL]) == spec.to_dict()


def test_secrets_are_in_no_label_and_no_repr():
    spec = spec_of()
    parameters = service_spec(spec, 1)
    for text in (json.dumps(parameters), repr(parameters), repr(spec)):
        assert PASSWORD not in text
    assert "deployer" not in json.dumps(parameters)
    assert read_spec_label(parameters["labels"]).registry_auth is None


@pytest.mark.parametrize("raw", [None, "not json", '{"name": "shop"}', "[]"])
def test_an_unreadable_spec_label_reads_as_none(raw):
    labels = {} if raw is None else {SPEC_LABEL: raw}
    assert read_spec_label(labels) is None


def test_an_engine_that_does_not_answer_is_a_swarm_error_naming_it(tmp_path):
    missing = f"unix://{tmp_path}/docker.sock"
    with pytest.raises(SwarmError, match=rf"docker engine at {missing}: connect: "):
        SwarmClient(missing, timeout=2).versions("shop")


# -- properties -----------------------------------------------------------------------
# Keys as the spec's grammar takes them, some under the platform's prefixes (which it must refuse).
_label_keys = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(["", "", "", "org.dockyard.", "dockyard.", "org.dockyard", "com.example.", "ORG.DOCKYARD."]),
    st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,12}[A-Za-z0-9])?", fullmatch=True),
)
_values = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S"), include_characters=" "), max_size=30)


@PROPERTY
@given(
    labels=st.dictionaries(_label_keys, _values, max_size=6),
    env=st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True), _values, max_size=6),
)
def test_labels_and_env_pass_through_and_never_reach_the_platforms_labels(labels, env):
    try:
        spec = parse_spec({"name": "shop", "image": "shop:1", "container_port": 8080, "labels": labels, "env": env})
    except SpecError as error:
        # Refused input never reaches Swarm; the refusal names the option.
        assert error.field.startswith(("labels", "env"))
        return
    container = container_of(service_spec(spec, 1))
    platform = {
        key: value for key, value in container["Labels"].items() if key.startswith(("org.dockyard.", "dockyard."))
    }
    assert set(platform) == PLATFORM_LABELS
    assert platform["org.dockyard.app"] == "shop" and platform["org.dockyard.stop_signal"] == "SIGTERM"
    assert {key: value for key, value in container["Labels"].items() if key not in PLATFORM_LABELS} == labels
    assert container["Env"] == [f"{key}={value}" for key, value in sorted(env.items())]
