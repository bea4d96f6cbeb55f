# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Templates: Jinja2 with functions that read Consul KV through the brain.

Executing a template never talks to Consul. It records every dependency it
read (so watches follow what templates really use), those not fetched yet,
the keys that do not exist, how many entries each `ls`/`tree` returned
(for the max_drop guard), and the data it skipped (`warn()` and registered
functions such as `routing_table()`) so that the runner can log each at error
level.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field

try:
    import jinja2

    JINJA2_IMPORT_ERROR = None
except ImportError as _error:  # pragma: no cover - targets install python3-jinja2
    jinja2 = None
    JINJA2_IMPORT_ERROR = _error

from .dependencies import KeyDependency, PrefixDependency, prefix_of

_FUNCTIONS = {}


def template_function(name: str):
    """Registers function(scope, *args, **kwargs) as the template function `name`.

    The engine knows no function by name beyond its own (key, ls, tree, warn):
    the routing table, for one, registers itself from renderer/routes.py.
    """

    def register(function):
        _FUNCTIONS[name] = function
        return function

    return register


class TemplateError(Exception):
    """The template cannot be compiled (syntax error, unreadable source)."""


class KVPair:
    """An entry returned by ls() and tree(): key relative to the prefix, full path, value, Consul's create index."""

    __slots__ = ("create_index", "key", "path", "value")

    def __init__(self, key: str, path: str, value: str, create_index: int = 0):
        self.key = key
        self.path = path
        self.value = value
        self.create_index = create_index

    def __repr__(self) -> str:
        return f"KVPair({self.path!r}, {self.value!r})"


@dataclass
class Execution:
    output: str | None = None
    used: list = field(default_factory=list)  # dependencies read, in order
    unfetched: list = field(default_factory=list)  # read but not in the brain yet
    missing: list = field(default_factory=list)  # key() of keys that do not exist
    sizes: dict = field(default_factory=dict)  # ("ls"|"tree", prefix) -> entries returned
    error: str | None = None  # the template raised (undefined variable, bad JSON, ...)
    warnings: list = field(default_factory=list)  # data the template skipped (warn(), routing_table())
    items: dict = field(default_factory=dict)  # full path -> value of each entry routing_table() weighed
    held: list = field(default_factory=list)  # full paths of quarantined entries it left out

    @property
    def complete(self) -> bool:
        return self.output is not None and not self.unfetched and not self.missing and self.error is None


def _parse_json(value):
    if isinstance(value, KVPair):
        value = value.value
    return json.loads(value)


def _to_json(value, indent=None, sort_keys=True):
    return json.dumps(value, indent=indent, sort_keys=sort_keys)


def environment():
    if jinja2 is None:
        raise TemplateError(f"the renderer needs Jinja2 (Debian package python3-jinja2): {JINJA2_IMPORT_ERROR}")
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["parse_json"] = _parse_json
    env.filters["to_json"] = _to_json
    return env


class Scope:
    """What a registered function may use while a template executes: warn() and admitted()."""

    def __init__(self, result: Execution, quarantine: dict, warn):
        self.result = result
        self.quarantine = quarantine
        self.warn = warn

    def admitted(self, entries) -> list:
        """entries (from ls/tree) without the quarantined ones; the rest are recorded as items a check may bisect."""
        kept = []
        for entry in entries or ():
            path, value = getattr(entry, "path", None), getattr(entry, "value", None)
            if path is not None:
                if path in self.quarantine and self.quarantine[path] == value:
                    self.result.held.append(path)
                    self.warn(f"{path}: skipped, the configuration check fails with it")
                    continue
                self.result.items[path] = value
            kept.append(entry)
        return kept


class Template:
    def __init__(self, name: str, source: str):
        self.name = name
        self.source = source
        try:
            self._compiled = environment().from_string(source)
        except jinja2.TemplateSyntaxError as error:
            raise TemplateError(f"template {name}: syntax error on line {error.lineno}: {error.message}") from None

    def execute(self, brain, quarantine=None) -> Execution:
        """Runs the template on what the brain holds.

        quarantine maps full paths to values that registered functions must
        leave out (through Scope.admitted(), as routing_table() does): entries
        a candidate failed its check with. An entry whose value has changed
        since is weighed again.
        """
        quarantine = quarantine or {}
        result = Execution()
        seen = set()

        def use(dependency):
            if dependency not in seen:
                seen.add(dependency)
                result.used.append(dependency)
            found, data = brain.recall(dependency)
            if not found and dependency not in result.unfetched:
                result.unfetched.append(dependency)
            return found, data

        def key(path):
            found, value = use(KeyDependency(str(path).strip("/")))
            if found and value is None and path not in result.missing:
                result.missing.append(str(path).strip("/"))
            return value if value is not None else ""

        def key_or_default(path, default=""):
            _found, value = use(KeyDependency(str(path).strip("/")))
            return value if value is not None else default

        def pairs(kind, path):
            prefix = prefix_of(str(path))
            _found, data = use(PrefixDependency(prefix))
            entries = []
            for full, value, *created in data or ():
                relative = full[len(prefix) :]
                if not relative or relative.endswith("/"):
                    continue  # folder markers
                if kind == "ls" and "/" in relative:
                    continue  # ls lists the top level only
                entries.append(KVPair(relative, full, value, created[0] if created else 0))
            result.sizes[(kind, prefix)] = len(entries)
            return entries

        def warn(message):
            text = str(message)
            if text not in result.warnings:
                result.warnings.append(text)
            return ""

        scope = Scope(result, quarantine, warn)
        context = {
            "key": key,
            "key_or_default": key_or_default,
            "ls": lambda prefix: pairs("ls", prefix),
            "tree": lambda prefix: pairs("tree", prefix),
            "warn": warn,
        }
        for name, function in _FUNCTIONS.items():
            context[name] = functools.partial(function, scope)
        try:
            result.output = self._compiled.render(context)
        except Exception as error:  # a template may raise anything; it must not stop the renderer
            result.output = None
            result.error = f"{type(error).__name__}: {error}"
        return result


def load(config) -> Template:
    """Compiles a TemplateConfig's source; raises TemplateError."""
    try:
        source = config.read_source()
    except OSError as error:
        raise TemplateError(f"template {config.name}: cannot read {config.source}: {error.strerror}") from None
    return Template(config.name, source)
