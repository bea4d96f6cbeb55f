import threading
import time

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.brain import Brain
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.dependencies import (
    FileContents,
    FileDependency,
    KeyDependency,
    PrefixDependency,
)
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.template import Template, TemplateError
from hypothesis import given
from hypothesis import strategies as st


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
    assert result.output == 'web 80 d\nls:x=1 tree:x tree:z/y {"a":2,"b":1}'
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


# -- line endings ---------------------------------------------------------------------
ENDINGS = st.sampled_from(["\n", "\r\n", "\r"])
TEXT = st.text(st.characters(whitelist_categories=("L", "N", "Zs"), whitelist_characters="-:;"), max_size=8)
TAGS = [
    "{{ 'v' }}",
    "{# note #}",
    "{{- 'v' -}}",
    "{#- note -#}",
    "{% if true %}v{% endif %}",
    "{%- if true -%}v{%- endif -%}",
]


@given(st.lists(st.tuples(TEXT, ENDINGS), max_size=12))
def test_text_keeps_its_line_endings_byte_for_byte(lines):
    source = "".join(text + ending for text, ending in lines)
    assert Template("t", source).execute(Brain()).output == source


@given(st.lists(st.tuples(TEXT, st.sampled_from(["", *TAGS[:1], TAGS[4]]), ENDINGS), max_size=12))
def test_tags_between_lines_leave_every_ending_as_it_was(lines):
    source = "".join(text + tag + ending for text, tag, ending in lines)
    expected = "".join(text + ("v" if tag else "") + ending for text, tag, ending in lines)
    assert Template("t", source).execute(Brain()).output == expected


@given(st.lists(st.tuples(TEXT, st.sampled_from(["", *TAGS]), st.booleans()), max_size=12))
def test_crlf_renders_as_lf_does_with_crlf_endings_even_with_whitespace_control(lines):
    source_lf = "".join(text + tag + ("\n" if newline else "") for text, tag, newline in lines)
    rendered_lf = Template("t", source_lf).execute(Brain()).output
    rendered_crlf = Template("t", source_lf.replace("\n", "\r\n")).execute(Brain()).output
    assert rendered_crlf == rendered_lf.replace("\n", "\r\n")


def test_raw_blocks_and_comments_keep_endings_too():
    source = "a\r\n{% raw %}x\r\ny{% endraw %}\r\n{# c\r\n #}\r\nz\r"
    assert Template("t", source).execute(Brain()).output == "a\r\nx\r\ny\r\n\r\nz\r"


# -- consul-template's KV semantics ---------------------------------------------------
def render(brain, source):
    execution = Template("t", source).execute(brain)
    return execution.output if execution.error is None else execution.error


def test_empty_keys_take_the_default_and_exist():
    brain = brain_with(a=(KeyDependency("e"), ""), b=(KeyDependency("n"), None))
    source = (
        "[{{ key_or_default('e', 'd') }}][{{ keyOrDefault('n', 'd') }}][{{ key_exists('e') }}][{{ keyExists('n') }}]"
    )
    assert render(brain, source) == "[d][d][True][False]"


@pytest.mark.parametrize(
    "call",
    ["key('')", "key('/')", "key_or_default('', 'x')", "keyExists('@dc1')", "tree('')", "ls('/')", "safe_tree('')"],
)
def test_empty_paths_are_refused_naming_the_function_and_never_read(call):
    execution = Template("t", "{{ " + call + " }}").execute(Brain())
    function = call.split("(")[0].replace("keyExists", "key_exists")
    assert execution.error.startswith(f"DependencyError: {function}(")
    assert execution.used == [] and execution.unfetched == []


def test_a_datacenter_after_at_is_part_of_the_dependency():
    execution = Template("t", "{{ key('a/b@dc2') }}{{ tree('p@dc-3') }}{{ key_or_default('c', 'x') }}").execute(Brain())
    assert execution.unfetched == [KeyDependency("a/b", "dc2"), PrefixDependency("p/", "dc-3"), KeyDependency("c")]
    assert "not a datacenter name" in render(Brain(), "{{ key('a@dc2/x') }}")


PREFIXED = (
    ("app/conf", "self", 1),
    ("app/conf/", "", 2),
    ("app/conf/a", "1", 3),
    ("app/conf/b/c", "2", 4),
    ("app/config/x", "3", 5),
)


def test_folder_semantics_by_default_and_consul_templates_string_prefix_on_request():
    brain = brain_with(a=(PrefixDependency("app/conf/"), PREFIXED[1:4]), b=(PrefixDependency("app/conf"), PREFIXED))
    source = (
        "{% for p in tree('app/conf') %}{{ p.Key }};{% endfor %}|{% for p in tree('app/conf', match='prefix') %}"
        "{{ p.Key }};{% endfor %}|{% for p in ls('app/conf', match='prefix') %}{{ p.Key }};{% endfor %}"
    )
    assert render(brain, source) == "a;b/c;|a;b/c;ig/x;|a;"
    assert "match must be 'folder' or 'prefix'" in render(brain, "{{ tree('app', match='glob') }}")


def test_safe_ls_holds_the_render_back_while_the_prefix_is_empty():
    execution = Template("t", "{{ safeLs('p') | length }}{{ safe_tree('q') | length }}").execute(
        brain_with(a=(PrefixDependency("p/"), ()), b=(PrefixDependency("q/"), (("q/x", "1", 1),)))
    )
    assert execution.missing == ["safe_ls(p/)"]
    assert not execution.complete


def test_helpers_are_filters_and_functions_under_both_names():
    source = (
        "{{ 'foo.bar' | regexReplaceAll('foo([.a-z]+)', '$1') }} "
        "{{ regexReplaceAll('foo([.a-z]+)', '$1', 'foo.bar') }} "
        "{{ 'foo.bar' | regex_match('o\\\\.b') }} {{ regexMatch('^x', 'foo') }} "
        "{{ 'hi' | base64Encode | base64Decode }} {{ toJSON({'a': '<'}) }} {{ {'a': 1} | to_json_pretty | length }} "
        "{{ parseYAML('a: 1').a }} {{ '' | parseJSON }}"
    )
    assert render(Brain(), source) == '.bar .bar True False hi {"a":"\\u003c"} 12 1 {}'


def test_env_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("DOCKYARD_TEST_VARIABLE", "set")
    monkeypatch.delenv("DOCKYARD_TEST_UNSET", raising=False)
    assert render(Brain(), "{{ env('DOCKYARD_TEST_VARIABLE') }}[{{ env('DOCKYARD_TEST_UNSET') }}]") == "set[]"


# -- file() ---------------------------------------------------------------------------
def test_file_is_a_dependency_read_at_each_fetch(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"one\r\n\xff")
    dependency = FileDependency(str(path))
    contents, index = dependency.fetch(None)
    assert contents == FileContents("one\r\n\udcff") and index > 0
    assert dependency.fetch(None) == (contents, index)
    brain = brain_with(a=(dependency, contents))
    assert Template("t", "{{ file('" + str(path) + "') }}").execute(brain).output == "one\r\n\udcff"


def test_a_blocking_file_fetch_returns_when_the_file_changes(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("one")
    dependency = FileDependency(str(path))
    _contents, index = dependency.fetch(None)
    started = time.monotonic()
    assert dependency.fetch(None, index, 0.2) == (FileContents("one"), index)  # no change: same index
    assert time.monotonic() - started >= 0.2
    threading.Timer(0.1, path.write_text, ("two",)).start()
    contents, changed = dependency.fetch(None, index, 5)
    assert contents == FileContents("two") and changed != index


def test_a_file_that_cannot_be_read_is_a_template_error_naming_it(tmp_path):
    missing = str(tmp_path / "nope")
    contents, _index = FileDependency(missing).fetch(None)
    assert contents.error == "No such file or directory"
    execution = Template("t", "{{ file('" + missing + "') }}").execute(
        brain_with(a=(FileDependency(missing), contents))
    )
    assert execution.error == f"FunctionError: file({missing!r}): cannot read it: No such file or directory"
