import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.brain import Brain
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.dependencies import (
    KeyDependency,
    PrefixDependency,
)
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.template import Template, TemplateError


def brain_with(**data):
    brain = Brain()
    for dependency, value in data.values():
        brain.remember(dependency, value)
    return brain


def test_functions_filters_and_recorded_dependencies():
    brain = brain_with(
        a=(KeyDependency("app/name"), "web"),
        b=(KeyDependency("app/spec"), '{"port": 80}'),
        c=(KeyDependency("app/none"), None),
        d=(
            PrefixDependency("app/backends/"),
            (("app/backends/", ""), ("app/backends/x", "1"), ("app/backends/z/y", "2")),
        ),
    )
    template = Template(
        "t",
        "{{ key('app/name') }} {{ (key('app/spec') | parse_json).port }} {{ key_or_default('app/none', 'd') }}\n"
        "{% for p in ls('app/backends') %}ls:{{ p.key }}={{ p.value }} {% endfor %}"
        "{% for p in tree('/app/backends/') %}tree:{{ p.key }} {% endfor %}{{ {'b': 1, 'a': 2} | to_json }}",
    )
    result = template.execute(brain)
    assert result.complete
    assert result.output == 'web 80 d\nls:x=1 tree:x tree:z/y {"a": 2, "b": 1}'
    assert result.used == [
        KeyDependency("app/name"),
        KeyDependency("app/spec"),
        KeyDependency("app/none"),
        PrefixDependency("app/backends/"),
    ]
    assert result.sizes == {("ls", "app/backends/"): 1, ("tree", "app/backends/"): 2}


def test_unfetched_and_missing_are_recorded_not_rendered():
    result = Template("t", "{{ key('a') }}{{ key('b') }}{{ ls('c') | length }}").execute(
        brain_with(b=(KeyDependency("b"), None))
    )
    assert not result.complete
    assert result.unfetched == [KeyDependency("a"), PrefixDependency("c/")]
    assert result.missing == ["b"]


def test_undefined_variable_is_an_error_not_an_empty_string():
    result = Template("t", "{{ nope }}").execute(Brain())
    assert result.output is None
    assert "UndefinedError" in result.error


def test_syntax_error_is_reported_with_its_line():
    with pytest.raises(TemplateError, match="template t: syntax error on line 2"):
        Template("t", "ok\n{% for %}")
