"""The agent's pure parts: the app_config setting, the renderer configuration, statuses and the decisions."""

import json
import os
import posixpath
import stat

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.appconfig import agent, layout, restart
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.config import ConfigError
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul import ConsulSettings
from ansible_collections.dockyard.platform.plugins.module_utils.registrator import config
from hypothesis import given
from hypothesis import strategies as st

BASE = {"node": "node1", "address": "10.0.0.5"}
TOKEN = "0123abcd-0000-4000-8000-0000000000aa"


def make_definition(**overrides):
    templates = overrides.pop("templates", None) or [
        {"name": "app.conf", "contents": "a", "destination": "/etc/shop/app.conf", "prefix": "config/qa/shop/"},
        {
            "name": "extra.ini",
            "contents": "b",
            "destination": "/etc/extra/extra.ini",
            "prefix": "config/qa/shared/",
            "max_drop": 0.5,
        },
    ]
    document = {"app": "shop", "service": "shop--v1", "token": TOKEN, "templates": templates, **overrides}
    return layout.parse_definition(json.dumps(document).encode(), "shop--v1")


# -- the app_config setting -------------------------------------------------------------------
def test_app_config_absent_leaves_the_agent_off():
    assert config.parse(BASE).app_config_dir is None
    assert config.parse({**BASE, "app_config": None}).app_config_dir is None


def test_app_config_directory_defaults_to_the_layout_base():
    assert config.parse({**BASE, "app_config": {}}).app_config_dir == layout.BASE_DIR
    assert config.parse({**BASE, "app_config": {"directory": "/srv/app-config"}}).app_config_dir == "/srv/app-config"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("yes", "app_config: expected a mapping"),
        ({"dir": "/x"}, "app_config: unknown"),
        ({"directory": 7}, "app_config.directory: expected a string"),
        ({"directory": "relative/dir"}, "app_config.directory: expected a clean absolute path"),
        ({"directory": "/srv/../etc"}, "app_config.directory: expected a clean absolute path"),
        ({"directory": "/srv/app/"}, "app_config.directory: expected a clean absolute path"),
        ({"directory": "/"}, "app_config.directory: expected a clean absolute path"),
        ({"directory": "/srv/a b"}, "app_config.directory: expected a clean absolute path"),
    ],
)
def test_app_config_refusals_name_the_setting(section, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        config.parse({**BASE, "app_config": section})


@given(st.text(alphabet="/.a-_\n ", max_size=30))
def test_an_accepted_directory_is_clean_and_absolute(text):
    try:
        parsed = config.parse({**BASE, "app_config": {"directory": text}}).app_config_dir
    except ConfigError as error:
        assert str(error).startswith("app_config.directory: ")
        return
    assert parsed == text
    assert parsed.startswith("/") and posixpath.normpath(parsed) == parsed and parsed != "/"


# -- the renderer configuration of a definition -----------------------------------------------
def test_runner_config_uses_the_app_token_and_the_layout():
    settings = ConsulSettings(address="127.0.0.1:8500", token="platform", token_file="/etc/platform-token")
    definition = make_definition()
    made = agent.runner_config(settings, definition, "/base", "debug")
    assert (made.consul.token, made.consul.token_file, made.consul.address) == (TOKEN, "", "127.0.0.1:8500")
    assert settings.token == "platform"  # the registrator's own settings are untouched
    assert made.state_dir == "/base/shop--v1/state"
    assert (made.wait.min, made.wait.max) == (0.1, 0.5)
    by_name = {template.name: template for template in made.templates}
    # /etc/extra sorts before /etc/shop: rendered/0 and rendered/1.
    assert by_name["extra.ini"].destination == "/base/shop--v1/rendered/0/extra.ini"
    assert by_name["app.conf"].destination == "/base/shop--v1/rendered/1/app.conf"
    assert by_name["extra.ini"].max_drop == 0.5
    assert all(t.mode == 0o644 and t.error_on_missing_key and t.missing_consul_key == "wait" for t in made.templates)


def test_prepare_makes_the_directories_and_the_token_file(tmp_path):
    base = str(tmp_path)
    agent.prepare(make_definition(), base)
    service_dir = layout.service_dir("shop--v1", base)
    modes = {
        name: stat.S_IMODE(os.stat(os.path.join(service_dir, name)).st_mode)
        for name in ("rendered/0", "rendered/1", "state", "token")
    }
    assert modes == {"rendered/0": 0o755, "rendered/1": 0o755, "state": 0o700, "token": 0o755}
    token_file = os.path.join(service_dir, "token", layout.TOKEN_FILE)
    with open(token_file) as handle:
        assert handle.read() == TOKEN
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o644
    assert not os.path.lexists(os.path.join(service_dir, "files"))
    assert sorted(os.listdir(os.path.join(service_dir, "token"))) == [layout.TOKEN_FILE]  # no temporary left


def test_link_files_replaces_whole(tmp_path):
    agent.link_files(str(tmp_path))
    agent.link_files(str(tmp_path))  # again: replaced, no error, no temporary left
    assert os.readlink(tmp_path / "files") == "rendered"
    assert sorted(os.listdir(tmp_path)) == ["files"]


# -- statuses ---------------------------------------------------------------------------------
def snapshot(*templates):
    return {"templates": [{"name": name, "last_error": error} for name, error in templates]}


def test_template_errors_take_last_errors_then_failing_reads():
    errors = agent.template_errors(
        snapshot(("b", "template failed"), ("a", None), ("c", None)),
        {"a": "cannot read key(x)", "b": "cannot read key(y)"},
    )
    assert errors == (("a", "cannot read key(x)"), ("b", "template failed"))


def test_template_errors_are_cut_to_the_layout_limit():
    ((_name, message),) = agent.template_errors(snapshot(("a", "x" * 5000)), {})
    assert len(message) == layout.MAX_ERROR_TEXT


def test_same_status_ignores_the_time():
    one = agent.build_status("node1", "shop--v1", True, 5, (), 1.0)
    assert agent.same_status(one, agent.build_status("node1", "shop--v1", True, 5, (), 2.0))
    assert not agent.same_status(one, agent.build_status("node1", "shop--v1", True, 6, (), 1.0))
    assert not agent.same_status(one, None)


def test_definition_error_status_round_trips_and_is_not_ready():
    status = agent.definition_error_status("node1", "shop--v1", "not JSON", 3.0)
    parsed = layout.parse_status(status.to_json(), "node1", "shop--v1")
    assert parsed == status
    assert not parsed.ready
    assert dict(parsed.errors) == {"definition": "not JSON"}


# -- decisions --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "service"),
    [
        ("dockyard/app-config/shop--v1", "shop--v1"),
        ("dockyard/app-config/", None),
        ("dockyard/app-config/shop--v1/extra", None),
    ],
)
def test_service_of(key, service):
    assert agent.service_of(key, "dockyard/") == service


def test_restart_requests_for_one_service_coalesce():
    restarter = restart.Restarter(client=None, containers=None, kv_prefix="dockyard/", node="node1")
    definition = make_definition()
    restarter.request(definition)
    restarter.request(definition)
    assert list(restarter._pending) == ["shop--v1"]
