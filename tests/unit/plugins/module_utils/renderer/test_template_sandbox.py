"""Sandboxed templates (an app team's configuration, rendered by the root agent on every node).

The classic Jinja2 escapes end in an error, never in Python's or the
renderer's internals; the host functions file() and env() do not exist; what
an app's template is for (its KV folder through `prefix`, the filters) still
renders, and an unsandboxed template keeps its old powers.
"""

import time

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.renderer import template as template_module
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.brain import Brain
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.dependencies import (
    FileContents,
    FileDependency,
    KeyDependency,
    PrefixDependency,
)
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.template import Template

PREFIX = "config/qa/shop/"
GREETING = KeyDependency(f"{PREFIX}greeting")
FOLDER = PrefixDependency(PREFIX)
PASSWD = FileDependency("/etc/passwd")


def shop_brain() -> Brain:
    brain = Brain()
    brain.remember(GREETING, "hello")
    brain.remember(KeyDependency(f"{PREFIX}limits"), '{"workers": 4}')
    brain.remember(FOLDER, ((f"{PREFIX}greeting", "hello"), (f"{PREFIX}db/host", "db1"), (f"{PREFIX}db/port", "5432")))
    brain.remember(PASSWD, FileContents("root:x:0:0"))
    return brain


def sandboxed(source: str, brain=None):
    template = Template("app.conf", source, sandboxed=True, variables={"prefix": PREFIX})
    return template.execute(brain or shop_brain())


# Nothing of the renderer's or Python's insides may show in an output or an error.
INTERNALS = ("<function", "<class", "<bound", "object at 0x", "Scope", "Brain", "Execution", "__globals__ of", "root:x")


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ self.__init__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ config.items() }}",
        "{{ request.application.__globals__ }}",
        "{{ '{0.__class__.__mro__}'.format('') }}",
        "{{ key.__call__ }}",
        "{{ key.func.__globals__ }}",
        "{{ parse_json.__module__ }}",
        "{{ timestamp.__code__ }}",
        "{{ range(10**9) | length }}",
        "{% for x in range(10**9) %}{% endfor %}",
        "{% set append = [].append %}{{ append(1) }}",
        "{{ [].append }}",
        "{% set found = {} %}{{ found.update({'a': 1}) }}",
        "{{ file('/etc/passwd') }}",
        "{{ env('HOME') }}",
        "{{ env }}",
    ],
)
def test_an_escape_is_an_error_never_the_internals(source):
    result = sandboxed(source)
    assert result.output is None and result.error, result.output
    assert not any(internal in result.error for internal in INTERNALS), result.error
    assert not result.complete


@pytest.mark.parametrize(
    "source",
    [
        "{{ key.func }}",
        "{{ key.args }}",
        "{{ key | attr('args') }}",
        "{{ warn.func }}",
        "{{ key.args[0].brain }}",
        "{{ tree.args[0].result.used }}",
    ],
)
def test_the_template_functions_do_not_hand_out_the_renderer_behind_them(source):
    """Found by this test: the functions are functools.partial objects, whose func, args and keywords the
    sandbox lets through (it blocks only _-names and a few attributes of plain functions), so a template reaches
    the raw function and the renderer's Scope, and through it the Brain and the Execution."""
    result = sandboxed(source)
    assert result.output is None and result.error, result.output


def test_a_template_cannot_forge_what_the_brain_holds():
    """Found by this test (see above): through key.args[0] a template calls the Brain's own methods, and so
    changes the values every other template of the app, and its next render, read."""
    brain = shop_brain()
    source = "{{ key(prefix ~ 'greeting') }}{{ key.args[0].brain.remember(key.args[0].result.used[0], 'forged') }}"
    sandboxed(source, brain)
    assert brain.recall(GREETING) == (True, "hello")


def test_attribute_names_the_sandbox_blocks_do_not_come_back_through_filters():
    for source in (
        "{{ '' | attr('__class__') }}",
        "{{ lipsum | attr('__globals__') }}",
        "{{ self | attr('__init__') }}",
    ):
        result = sandboxed(source)
        assert result.output is None and result.error, source


# -- what still renders ----------------------------------------------------------------------
def test_an_apps_template_reads_its_folder_through_prefix():
    source = (
        "greeting={{ key(prefix ~ 'greeting') }}\n"
        "workers={{ (key(prefix ~ 'limits') | parse_json).workers }}\n"
        "{% for pair in tree(prefix ~ 'db') %}{{ pair.key }}={{ pair.value }};{% endfor %}\n"
        "{% for pair in ls(prefix) %}{{ pair.Key }}{% endfor %}\n"
        "{{ key_or_default(prefix ~ 'absent', 'fallback') }} {{ key_exists(prefix ~ 'greeting') }}\n"
        "{{ {'b': 1, 'a': [1, 2]} | to_json }} {{ 'a,b'.split(',') | join('+') }} {{ 'shop' | upper }}\n"
        "{% set names = namespace(count=0) %}{% for n in range(3) %}{% set names.count = names.count + n %}{% endfor %}"
        "{{ names.count }} {{ warn('skipped') }}"
    )
    brain = shop_brain()
    brain.remember(PrefixDependency(f"{PREFIX}db/"), ((f"{PREFIX}db/host", "db1"), (f"{PREFIX}db/port", "5432")))
    brain.remember(KeyDependency(f"{PREFIX}absent"), None)
    result = sandboxed(source, brain)
    assert result.error is None, result.error
    assert result.output == (
        'greeting=hello\nworkers=4\nhost=db1;port=5432;\ngreeting\nfallback True\n{"a":[1,2],"b":1} a+b SHOP\n3 '
    )
    assert GREETING in result.used and result.warnings == ["skipped"] and result.complete


def test_a_sandboxed_template_still_waits_for_keys_it_has_not_got():
    result = sandboxed("{{ key(prefix ~ 'greeting') }}{{ key(prefix ~ 'later') }}", Brain())
    assert result.unfetched == [GREETING, KeyDependency(f"{PREFIX}later")] and not result.complete


def test_an_unsandboxed_template_keeps_its_host_functions_and_python_attributes(monkeypatch):
    monkeypatch.setenv("DOCKYARD_SANDBOX_TEST", "from-env")
    source = "{{ env('DOCKYARD_SANDBOX_TEST') }} {{ file('/etc/passwd') }} {{ ''.__class__.__name__ }} {{ key(p) }}"
    result = Template("haproxy.cfg", source, variables={"p": GREETING.path}).execute(shop_brain())
    assert result.error is None, result.error
    assert result.output == "from-env root:x:0:0 str hello"
    assert PASSWD in result.used


# -- the isolated render's limits (template.isolated) ----------------------------------------------------
def test_a_render_that_spins_is_stopped_at_its_cpu_limit_and_the_daemon_goes_on(monkeypatch):
    monkeypatch.setattr(template_module, "ISOLATED_CPU_SECONDS", 1)
    spinning = Template(
        "spin", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", sandboxed=True
    )
    started = time.monotonic()
    result = spinning.execute(Brain())
    assert result.output is None and result.error == "render stopped: it used more than 1s of CPU"
    assert time.monotonic() - started < 5


def test_a_render_that_asks_for_too_much_memory_fails_with_a_memory_error():
    result = Template("big", '{{ "x".ljust(2000000000) | length }}', sandboxed=True).execute(Brain())
    assert result.output is None and result.error.startswith("MemoryError")


def test_a_render_past_the_output_bound_fails():
    result = Template("long", '{% for i in range(100000) %}{{ "x" * 1000 }}{% endfor %}', sandboxed=True).execute(
        Brain()
    )
    assert result.output is None and "the output passed" in result.error


def test_nothing_of_a_sandboxed_template_runs_while_it_compiles():
    started = time.monotonic()
    Template("folded", '{{ ("a" * 40 ~ "b") | regex_replace_all("(a+)+$", "") }} {{ 2 ** 100000000 }}', sandboxed=True)
    assert time.monotonic() - started < 0.5
