"""The catalog's functions: query grammar, health status, dependencies as cache keys, reads recorded through Scope.

Fetching from a real Consul is tested in tests/integration/renderer/test_ported_templates.py.
"""

import re
import string

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.brain import Brain
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.catalog import (
    CatalogNodesDependency,
    CatalogService,
    CatalogServicesDependency,
    HealthService,
    HealthServiceDependency,
    service_dependency,
    status_of,
)
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.dependencies import (
    DependencyError,
    split_datacenter,
)
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.template import Template
from hypothesis import given
from hypothesis import strategies as st

NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
TAG = re.compile(r"[A-Za-z0-9_.-]{1,128}")
DATACENTER = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@pytest.mark.parametrize(
    ("query", "status_filter", "expected", "statuses"),
    [
        ("web", None, HealthServiceDependency("web"), None),
        ("release.web", None, HealthServiceDependency("web", "release"), None),
        ("v1.2.web@dc2", None, HealthServiceDependency("web", "v1.2", "dc2"), None),
        ("web|any", None, HealthServiceDependency("web", passing_only=False), ("any",)),
        ("web", "passing,warning", HealthServiceDependency("web", passing_only=False), ("passing", "warning")),
    ],
)
def test_service_queries_read_as_consul_templates(query, status_filter, expected, statuses):
    assert service_dependency(query, status_filter) == (expected, statuses)


@pytest.mark.parametrize(
    ("query", "status_filter", "message"),
    [
        ("", None, "expected \\[tag.\\]name"),
        ("web/x", None, "expected \\[tag.\\]name"),
        ("web@dc 1", None, "not a datacenter name"),
        ("web|healthy", None, "unknown status filter healthy"),
        ("web|any,passing", None, "'any' cannot be combined"),
        ("web|any", "any", "give the status filter once"),
        ("web~_agent", None, "~near is not supported"),
    ],
)
def test_bad_service_queries_are_refused_naming_the_function(query, status_filter, message):
    with pytest.raises(DependencyError, match=message):
        service_dependency(query, status_filter)


@given(st.text(string.printable, max_size=40))
def test_only_names_and_tags_of_the_grammar_reach_a_url(query):
    try:
        dependency, _statuses = service_dependency(query)
    except DependencyError:
        return
    assert NAME.fullmatch(dependency.name)
    assert not dependency.tag or TAG.fullmatch(dependency.tag)
    assert not dependency.datacenter or DATACENTER.fullmatch(dependency.datacenter)


@given(st.text(max_size=80))
def test_datacenters_follow_the_configurations_grammar(datacenter):
    try:
        _path, found = split_datacenter("key", "a/b@" + datacenter)
    except DependencyError as error:
        assert str(error).startswith("key(")
        assert not DATACENTER.fullmatch(datacenter)
    else:
        assert found == datacenter and DATACENTER.fullmatch(datacenter)


@given(st.text(max_size=130))
def test_a_dependency_refuses_a_name_outside_the_grammar_even_when_built_directly(name):
    try:
        HealthServiceDependency(name)
    except DependencyError:
        assert not NAME.fullmatch(name)
    else:
        assert NAME.fullmatch(name)


@pytest.mark.parametrize(
    ("statuses", "status"),
    [
        ([], "passing"),
        (["passing", "warning"], "warning"),
        (["warning", "critical", "passing"], "critical"),
        (["unknown", "warning"], "unknown"),
    ],
)
def test_an_instances_status_is_its_worst_check(statuses, status):
    assert status_of([{"Status": each} for each in statuses]) == status


def test_dependencies_are_cache_keys_compared_by_value():
    brain = Brain()
    brain.remember(HealthServiceDependency("web", "release", "dc2"), ("data",))
    assert brain.recall(HealthServiceDependency("web", "release", "dc2")) == (True, ("data",))
    assert HealthServiceDependency("web") != HealthServiceDependency("web", passing_only=False)
    assert hash(CatalogServicesDependency("dc1")) == hash(CatalogServicesDependency("dc1"))
    assert CatalogNodesDependency() != CatalogServicesDependency()
    with pytest.raises(AttributeError):
        HealthServiceDependency("web").name = "other"


def instance(node, status, tags=()):
    return HealthService(node, "", "10.0.0.1", "dc1", "10.0.0.1", f"web-{node}", "web", tuple(tags), status, 80)


def test_templates_read_the_catalog_through_scope_and_filter_by_status():
    brain = Brain()
    everything = (
        instance("a", "passing", ["blue"]),
        instance("b", "warning", ["blue", "green"]),
        instance("c", "critical"),
    )
    brain.remember(HealthServiceDependency("web", passing_only=False), everything)
    brain.remember(HealthServiceDependency("web"), everything[:1])
    brain.remember(CatalogServicesDependency(), (CatalogService("web", ("blue",)),))
    source = (
        "{{ service('web') | map(attribute='Node') | join }} {{ service('web', 'passing,warning') | length }} "
        "{{ service('web|any') | length }} {{ services()[0].Name }} "
        "{% for tag, found in (service('web|any') | byTag).items() %}{{ tag }}={{ found | length }};{% endfor %}"
    )
    execution = Template("t", source).execute(brain)
    assert execution.complete, execution.error
    assert execution.output == "a 2 3 web blue=2;green=1;"
    assert execution.used == [
        HealthServiceDependency("web"),
        HealthServiceDependency("web", passing_only=False),
        CatalogServicesDependency(),
    ]


def test_an_unfetched_catalog_read_is_recorded_and_renders_nothing_yet():
    execution = Template("t", "{{ nodes('@dc2') | length }}").execute(Brain())
    assert execution.unfetched == [CatalogNodesDependency("dc2")]
    assert not execution.complete
