"""The app spec's configuration options (environment, config, config_kv_prefix) and what they make of a version.

Named cases for the defaults and every refusal (the message names config[i]
and the field), the round trip through to_dict, the version id (an app
without config keeps the id it had before the feature; a template change is
a new version), the spec diff, and the version service's mounts.
"""

import copy

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.app.spec import SpecError, parse_spec
from ansible_collections.dockyard.platform.plugins.module_utils.app.swarm import service_spec
from ansible_collections.dockyard.platform.plugins.module_utils.appconfig import layout
from hypothesis import given, settings
from hypothesis import strategies as st

PROPERTY = settings(max_examples=200, derandomize=True, deadline=None)

SHOP = {
    "name": "shop",
    "image": "registry.lab:5000/storefront/shop:git-4f2a9c1",
    "instances": 2,
    "container_port": 8080,
    "env": {"LOG": "info"},
    "health": {"path": "/healthz"},
}
# The version id of SHOP as computed before app configuration existed: a deployed app must not roll on an upgrade.
SHOP_VERSION_ID = "f7277af92779"
APP_CONF = {"destination": "/etc/shop/app.conf", "contents": "greeting={{ key(prefix ~ 'greeting') }}\n"}


def shop(**changes) -> dict:
    options = copy.deepcopy(SHOP)
    options.update(changes)
    return options


def configured(*templates, **changes) -> dict:
    return shop(config=[dict(item) for item in (templates or (APP_CONF,))], **changes)


def refusal(options) -> SpecError:
    with pytest.raises(SpecError) as raised:
        parse_spec(options)
    return raised.value


# -- defaults -----------------------------------------------------------------------------------
def test_an_app_without_config_has_none_and_the_default_kv_prefix():
    spec = parse_spec(SHOP)
    assert spec.config == () and spec.environment is None and spec.config_kv_prefix == "config/"
    assert spec.config_root == "config/shop/"
    for empty in (None, []):
        assert parse_spec(shop(config=empty)).config == ()
    assert parse_spec(shop(environment="")).environment is None


def test_a_templates_name_defaults_to_its_file_and_its_prefix_to_the_apps_folder():
    (template,) = parse_spec(configured()).config
    assert template.name == "app.conf" and template.prefix == "config/shop/"
    assert (template.on_change, template.signal, template.max_drop) == ("signal", "SIGHUP", None)
    assert template.contents == APP_CONF["contents"] and template.destination == "/etc/shop/app.conf"


def test_the_environment_puts_the_default_prefix_under_it():
    spec = parse_spec(configured(environment="qa"))
    assert spec.environment == "qa" and spec.config_root == "config/qa/shop/"
    assert spec.config[0].prefix == "config/qa/shop/"


def test_config_kv_prefix_moves_the_apps_folder():
    spec = parse_spec(configured(environment="qa", config_kv_prefix="apps/conf/"))
    assert spec.config_kv_prefix == "apps/conf/" and spec.config[0].prefix == "apps/conf/qa/shop/"


def test_every_field_of_a_template_is_taken():
    given_template = {
        **APP_CONF,
        "name": "main",
        "prefix": "config/qa/shop/db/",
        "on_change": "restart",
        "signal": "usr1",
        "max_drop": "50%",
    }
    (template,) = parse_spec(configured(given_template, environment="qa")).config
    assert template.name == "main" and template.prefix == "config/qa/shop/db/"
    assert (template.on_change, template.signal, template.max_drop) == ("restart", "SIGUSR1", 0.5)
    (fraction,) = parse_spec(configured({**APP_CONF, "max_drop": 0.25})).config
    assert fraction.max_drop == 0.25


# -- refusals -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"config": "app.conf"}, "config", "expected a list of templates"),
        ({"config": ["app.conf"]}, "config[0]", "expected a dict with name, contents"),
        ({"config": [{**APP_CONF, "mode": "0600"}]}, "config[0]", "unknown key(s) mode"),
        ({"config": [{"contents": "x"}]}, "config[0].destination", "expected an absolute file path"),
        ({"config": [{**APP_CONF, "destination": "/app.conf"}]}, "config[0].destination", "other than /"),
        ({"config": [{**APP_CONF, "destination": "/proc/x"}]}, "config[0].destination", "inside /proc"),
        ({"config": [{**APP_CONF, "destination": "/run/dockyard/t"}]}, "config[0].destination", "/run/dockyard"),
        ({"config": [{**APP_CONF, "destination": "/etc/../x/y"}]}, "config[0].destination", "clean absolute"),
        ({"config": [{**APP_CONF, "destination": "/etc/shop/"}]}, "config[0].destination", "expected 1 to 100"),
        ({"config": [{**APP_CONF, "contents": None}]}, "config[0].contents", "expected the template's text"),
        ({"config": [{**APP_CONF, "name": "a/b"}]}, "config[0].name", "expected 1 to 100 letters"),
        ({"config": [{**APP_CONF, "on_change": "reload"}]}, "config[0].on_change", "expected one of signal, restart"),
        ({"config": [{**APP_CONF, "signal": "SIGKILL"}]}, "config[0].signal", "expected one of SIGHUP"),
        ({"config": [{**APP_CONF, "signal": 9}]}, "config[0].signal", "expected one of SIGHUP"),
        ({"config": [{**APP_CONF, "max_drop": "150%"}]}, "config[0].max_drop", "must lie between 0 and 1"),
        ({"config": [{**APP_CONF, "max_drop": "half"}]}, "config[0].max_drop", "expected a share such as 0.5"),
        ({"config": [{**APP_CONF, "prefix": "config/cart/"}]}, "config[0].prefix", "the app's own folder"),
        ({"config": [{**APP_CONF, "prefix": "config/shopping/"}]}, "config[0].prefix", "the app's own folder"),
        ({"config": [{**APP_CONF, "prefix": "config/"}]}, "config[0].prefix", "the app's own folder"),
        ({"config": [{**APP_CONF, "prefix": "config/shop/../cart/"}]}, "config[0].prefix", "segment '..'"),
        ({"config": [{**APP_CONF, "prefix": "config/shop"}]}, "config[0].prefix", "expected a KV folder"),
        ({"config": [APP_CONF, APP_CONF]}, "config", "each template's name must be unique"),
        (
            {"config": [APP_CONF, {**APP_CONF, "destination": "/etc/shop/d/x"}]},
            "config",
            "directory /etc/shop/d lies inside /etc/shop",
        ),
        ({"config": [{**APP_CONF, "name": f"f{n}"} for n in range(17)]}, "config", "expected 1 to 16 templates"),
        ({"config_kv_prefix": "/config/"}, "config_kv_prefix", "expected a KV folder"),
        ({"config_kv_prefix": "config"}, "config_kv_prefix", "expected a KV folder"),
        ({"config_kv_prefix": "a/../"}, "config_kv_prefix", "segment '..'"),
        ({"environment": "q a"}, "environment", "expected letters, digits"),
        ({"environment": "qa/prod"}, "environment", "expected letters, digits"),
        ({"environment": 3}, "environment", ""),
    ],
)
def test_a_bad_config_option_is_refused_naming_it(changes, field, reason):
    error = refusal(shop(**changes))
    assert error.field == field, str(error)
    assert reason in error.reason
    assert str(error).startswith(f"{field}: ")


def test_the_second_template_is_named_by_its_index():
    error = refusal(configured(APP_CONF, {**APP_CONF, "destination": "/srv/b", "signal": "KILL"}))
    assert error.field == "config[1].signal"


def test_a_prefix_outside_the_environments_folder_is_refused():
    error = refusal(configured({**APP_CONF, "prefix": "config/prod/shop/"}, environment="qa"))
    assert error.field == "config[0].prefix" and "config/qa/shop/" in error.reason


# -- to_dict ----------------------------------------------------------------------------------
def test_to_dict_leaves_the_options_out_when_unused():
    document = parse_spec(SHOP).to_dict()
    assert not {"environment", "config", "config_kv_prefix"} & set(document)
    assert "config_kv_prefix" not in parse_spec(configured()).to_dict()


def test_a_configured_spec_round_trips_through_to_dict():
    options = configured(
        APP_CONF,
        {"destination": "/srv/extra/x.ini", "contents": "{{ tree(prefix) | length }}", "max_drop": "10%"},
        {**APP_CONF, "name": "second", "destination": "/etc/shop/second", "on_change": "restart", "signal": "TERM"},
        environment="qa",
        config_kv_prefix="apps/",
    )
    spec = parse_spec(options)
    document = spec.to_dict()
    assert document["environment"] == "qa" and document["config_kv_prefix"] == "apps/"
    assert document["config"][1] == {
        "name": "x.ini",
        "contents": "{{ tree(prefix) | length }}",
        "destination": "/srv/extra/x.ini",
        "prefix": "apps/qa/shop/",
        "on_change": "signal",
        "signal": "SIGHUP",
        "max_drop": 0.1,
    }
    assert parse_spec(document) == spec and parse_spec(document).version_id == spec.version_id


# -- the version id -------------------------------------------------------------------------
def test_an_app_without_config_keeps_its_version_id():
    assert parse_spec(SHOP).version_id == SHOP_VERSION_ID
    assert parse_spec(shop(environment="qa")).version_id == SHOP_VERSION_ID
    assert parse_spec(shop(config=[], config_kv_prefix="apps/")).version_id == SHOP_VERSION_ID


def test_config_is_part_of_the_version():
    base = parse_spec(configured())
    assert base.version_id != SHOP_VERSION_ID
    changed = [
        configured({**APP_CONF, "contents": "other"}),
        configured({**APP_CONF, "destination": "/etc/shop/other.conf"}),
        configured({**APP_CONF, "name": "renamed"}),
        configured({**APP_CONF, "signal": "SIGUSR2"}),
        configured({**APP_CONF, "on_change": "restart"}),
        configured({**APP_CONF, "max_drop": 0.5}),
        configured(APP_CONF, {**APP_CONF, "destination": "/srv/x/y"}),
        # The prefixes are in the templates, so a new environment or KV folder is a new version of a configured app.
        configured(environment="qa"),
        configured(config_kv_prefix="apps/"),
    ]
    ids = {parse_spec(options).version_id for options in changed}
    assert base.version_id not in ids and len(ids) == len(changed)
    assert parse_spec(configured(instances=9, hosts=["shop.example.com"])).version_id == base.version_id


def test_the_diff_shows_a_config_change_as_a_roll():
    before = parse_spec(configured())
    after = parse_spec(configured({**APP_CONF, "contents": "new"}))
    diff = before.diff(after)
    assert diff.changed == ("config",) and diff.rolls
    assert diff.before["config"][0]["contents"] == APP_CONF["contents"]
    assert diff.after["config"][0]["contents"] == "new"
    added = parse_spec(SHOP).diff(before)
    assert added.changed == ("config",) and added.before["config"] is None and added.rolls
    moved = parse_spec(SHOP).diff(parse_spec(shop(environment="qa")))
    assert moved.changed == ("environment",) and not moved.rolls


# -- the version service ----------------------------------------------------------------------
def test_a_configured_version_mounts_its_directories_and_its_token_read_only():
    spec = parse_spec(
        configured(
            {"destination": "/srv/z/z.conf", "contents": "z"},
            APP_CONF,
            {"destination": "/etc/shop/b.conf", "contents": "b"},
        )
    )
    container = service_spec(spec, 2)["task_template"]["ContainerSpec"]
    service = spec.service_name
    assert container["Mounts"] == [
        {"Type": "bind", "Source": layout.files_dir(service, 0), "Target": "/etc/shop", "ReadOnly": True},
        {"Type": "bind", "Source": layout.files_dir(service, 1), "Target": "/srv/z", "ReadOnly": True},
        {"Type": "bind", "Source": layout.token_dir(service), "Target": "/run/dockyard", "ReadOnly": True},
    ]
    assert container["Mounts"][0]["Source"] == f"/var/lib/dockyard/app-config/{service}/files/0"
    assert container["Env"] == ["LOG=info", "CONSUL_HTTP_TOKEN_FILE=/run/dockyard/consul-token"]


def test_an_app_without_config_gets_no_mounts_nor_token():
    container = service_spec(parse_spec(SHOP), 2)["task_template"]["ContainerSpec"]
    assert "Mounts" not in container and container["Env"] == ["LOG=info"]


file_names = st.from_regex(r"[a-z][a-z0-9._-]{0,10}", fullmatch=True)
folders = st.lists(st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True), min_size=1, max_size=5, unique=True)


@PROPERTY
@given(folders, st.data())
def test_each_mount_source_is_the_sorted_index_of_its_target(directories, data):
    """Whatever the order of the templates, the n-th sorted directory is mounted from files/<n>, as the agent
    renders it (Definition.directory_index)."""
    destinations = [f"/srv/{directory}/{data.draw(file_names)}" for directory in directories]
    order = data.draw(st.permutations(destinations))
    spec = parse_spec(
        configured(*({"destination": path, "contents": "x", "name": f"t{n}"} for n, path in enumerate(order)))
    )
    mounts = service_spec(spec, 1)["task_template"]["ContainerSpec"]["Mounts"]
    targets = sorted(f"/srv/{directory}" for directory in directories)
    assert [mount["Target"] for mount in mounts] == [*targets, layout.TOKEN_MOUNT]
    assert [mount["Source"] for mount in mounts[:-1]] == [
        layout.files_dir(spec.service_name, index) for index in range(len(targets))
    ]
    assert all(mount["ReadOnly"] and mount["Type"] == "bind" for mount in mounts)
