# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Templates: Jinja2 with consul-template's functions, reading Consul through the brain.

Executing a template never talks to Consul. It records every dependency it
read (so watches follow what templates really use), those not fetched yet,
the keys that do not exist, how many entries each `ls`/`tree` returned
(for the max_drop guard), and the data it skipped (`warn()` and registered
functions such as `routing_table()`) so that the runner can log each at error
level.

Functions that read something take a Scope and register with
template_function(name): the KV functions here, the catalog's in catalog.py,
the routing table in routes.py. Helpers that read nothing (functions.py) are
both filters and functions, under consul-template's camelCase names and our
snake_case ones.

The source's line endings are kept byte for byte: Jinja2 would turn every
CRLF and CR into LF.
"""

from __future__ import annotations

import functools
import os
import pickle
import resource
import select
import signal
import time
from dataclasses import dataclass, field

try:
    import jinja2
    import jinja2.compiler
    import jinja2.lexer
    import jinja2.nodes
    import jinja2.sandbox

    JINJA2_IMPORT_ERROR = None
except ImportError as _error:  # pragma: no cover - targets install python3-jinja2
    jinja2 = None
    JINJA2_IMPORT_ERROR = _error

from . import functions as helpers
from .dependencies import (
    DependencyError,
    FileDependency,
    KeyDependency,
    PrefixDependency,
    encode_text,
    prefix_of,
    split_datacenter,
)
from .missing_keys import empty_missing_keys

_FUNCTIONS = {}


def template_function(*names: str):
    """Registers function(scope, *args, **kwargs) as the template function(s) `names`.

    The engine itself knows only the KV functions, warn(), env() and file():
    the routing table (routes.py) and the catalog (catalog.py) register
    themselves.
    """

    def register(function):
        for name in names:
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

    # consul-template's field names, so that a ported {{ .Key }} becomes {{ pair.Key }}
    Key = property(lambda self: self.key)
    Path = property(lambda self: self.path)
    Value = property(lambda self: self.value)
    CreateIndex = property(lambda self: self.create_index)

    def relative(self, key: str) -> KVPair:
        """The same entry under another relative key (byKey strips the first segment)."""
        return KVPair(key, self.path, self.value, self.create_index)

    def as_json(self) -> dict:
        return {"CreateIndex": self.create_index, "Key": self.key, "Path": self.path, "Value": self.value}

    def __repr__(self) -> str:
        return f"KVPair({self.path!r}, {self.value!r})"


@dataclass
class Execution:
    output: str | None = None
    used: list = field(default_factory=list)  # dependencies read, in order
    unfetched: list = field(default_factory=list)  # read but not in the brain yet
    missing: list = field(default_factory=list)  # key() of keys that do not exist, safe_ls/safe_tree found empty
    sizes: dict = field(default_factory=dict)  # ("ls"|"tree", prefix) -> entries returned
    error: str | None = None  # the template raised (undefined variable, bad JSON, ...)
    warnings: list = field(default_factory=list)  # data the template skipped (warn(), routing_table())
    items: dict = field(default_factory=dict)  # full path -> value of each entry routing_table() weighed
    held: list = field(default_factory=list)  # full paths of quarantined entries it left out

    @property
    def complete(self) -> bool:
        return self.output is not None and not self.unfetched and not self.missing and self.error is None

    @property
    def contents(self) -> bytes | None:
        """The output as the bytes to write: a value that was not UTF-8 goes back to its own bytes."""
        return None if self.output is None else encode_text(self.output)


class Scope:
    """What a registered function may use while a template executes.

    use() reads a dependency from the brain and records it (as used, and as
    unfetched while the brain lacks it); wait_for() marks the render as
    waiting (a missing key); warn() records skipped data; admitted() leaves
    out quarantined entries.
    """

    def __init__(self, result: Execution, brain, quarantine: dict):
        self.result = result
        self.brain = brain
        self.quarantine = quarantine
        self._seen = set()

    def use(self, dependency) -> tuple:
        """(found, data): found is False until the dependency has been fetched."""
        if dependency not in self._seen:
            self._seen.add(dependency)
            self.result.used.append(dependency)
        found, data = self.brain.recall(dependency)
        if not found and dependency not in self.result.unfetched:
            self.result.unfetched.append(dependency)
        return found, data

    def wait_for(self, what: str) -> None:
        if what not in self.result.missing:
            self.result.missing.append(what)

    def warn(self, message) -> str:
        text = str(message)
        if text not in self.result.warnings:
            self.result.warnings.append(text)
        return ""

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


# -- KV -------------------------------------------------------------------------------
def _key_dependency(function: str, argument) -> KeyDependency:
    path, datacenter = split_datacenter(function, argument)
    path = path.strip("/")
    if not path:
        raise DependencyError(f"{function}({str(argument)!r}): the key path is empty")
    return KeyDependency(path, datacenter)


def _display(path: str, datacenter: str) -> str:
    return f"{path}@{datacenter}" if datacenter else path


@template_function("key")
def key(scope: Scope, path) -> str:
    """The value; a key that does not exist holds the render back (recorded as missing)."""
    dependency = _key_dependency("key", path)
    found, value = scope.use(dependency)
    if found and value is None:
        scope.wait_for(_display(dependency.path, dependency.datacenter))
    return value if value is not None else ""


@template_function("key_or_default", "keyOrDefault")
def key_or_default(scope: Scope, path, default="") -> str:
    """The value, or default when the key does not exist or is empty (as consul-template)."""
    _found, value = scope.use(_key_dependency("key_or_default", path))
    return value if value else default


@template_function("key_exists", "keyExists")
def key_exists(scope: Scope, path) -> bool:
    _found, value = scope.use(_key_dependency("key_exists", path))
    return value is not None


_MATCHES = ("folder", "prefix")


def _prefix_dependency(function: str, argument, match: str) -> PrefixDependency:
    if match not in _MATCHES:
        raise DependencyError(f"{function}: match must be 'folder' or 'prefix', got {match!r}")
    path, datacenter = split_datacenter(function, argument)
    prefix = prefix_of(path) if match == "folder" else path.lstrip("/")
    if not prefix:
        raise DependencyError(
            f"{function}({str(argument)!r}): the path is empty (it would read the whole KV store); name a folder"
        )
    return PrefixDependency(prefix, datacenter)


def _read_pairs(scope: Scope, function: str, path, match: str) -> tuple:
    """(found, dependency, entries) of ls/tree and their safe forms, entries as KVPairs."""
    dependency = _prefix_dependency(function, path, match)
    prefix = dependency.prefix
    found, data = scope.use(dependency)
    entries = []
    for full, value, *created in data or ():
        # consul-template strips the prefix, then leading slashes; a folder prefix already ends with one.
        relative = full[len(prefix) :] if match == "folder" else full[len(prefix) :].lstrip("/")
        if not relative or relative.endswith("/"):
            continue  # the prefix's own key and folder markers
        if function.endswith("ls") and "/" in relative:
            continue  # ls lists the top level only
        entries.append(KVPair(relative, full, value, created[0] if created else 0))
    kind = "ls" if function.endswith("ls") else "tree"
    scope.result.sizes[(kind, _display(prefix, dependency.datacenter))] = len(entries)
    return found, dependency, entries


def _pairs(scope: Scope, function: str, path, match: str) -> list:
    return _read_pairs(scope, function, path, match)[2]


def _safe_pairs(scope: Scope, function: str, path, match: str) -> list:
    """consul-template's safeLs/safeTree: an empty prefix holds the render back instead of rendering nothing."""
    found, dependency, entries = _read_pairs(scope, function, path, match)
    if found and not entries:
        scope.wait_for(f"{function}({_display(dependency.prefix, dependency.datacenter)})")
    return entries


@template_function("ls")
def ls(scope: Scope, path, match: str = "folder") -> list:
    return _pairs(scope, "ls", path, match)


@template_function("tree")
def tree(scope: Scope, path, match: str = "folder") -> list:
    return _pairs(scope, "tree", path, match)


@template_function("safe_ls", "safeLs")
def safe_ls(scope: Scope, path, match: str = "folder") -> list:
    return _safe_pairs(scope, "safe_ls", path, match)


@template_function("safe_tree", "safeTree")
def safe_tree(scope: Scope, path, match: str = "folder") -> list:
    return _safe_pairs(scope, "safe_tree", path, match)


# -- the host -------------------------------------------------------------------------
@template_function("file")
def read_file(scope: Scope, path) -> str:
    """A local file's contents, watched like a key; a file that cannot be read is a template error."""
    path = str(path)
    if not path:
        raise DependencyError("file(''): the path is empty")
    _found, contents = scope.use(FileDependency(path))
    if contents is None:
        return ""
    if contents.error is not None:
        raise helpers.FunctionError(f"file({path!r}): cannot read it: {contents.error}")
    return contents.text


@template_function("env")
def env(_scope: Scope, name) -> str:
    """An environment variable of the renderer's process; "" when it is not set (as consul-template)."""
    return os.environ.get(str(name), "")


@template_function("warn")
def warn(scope: Scope, message) -> str:
    """Records message as data the template skipped; renders nothing."""
    return scope.warn(message)


# -- helpers that read nothing ----------------------------------------------------------
# Filters and functions alike, under both names.
_HELPERS = {
    ("parse_json", "parseJSON"): helpers.parse_json,
    ("to_json", "toJSON"): helpers.to_json,
    ("to_json_pretty", "toJSONPretty"): helpers.to_json_pretty,
    ("to_unescaped_json", "toUnescapedJSON"): helpers.to_unescaped_json,
    ("to_unescaped_json_pretty", "toUnescapedJSONPretty"): helpers.to_unescaped_json_pretty,
    ("explode",): helpers.explode,
    ("parse_yaml", "parseYAML"): helpers.parse_yaml,
    ("to_yaml", "toYAML"): helpers.to_yaml,
    ("base64_encode", "base64Encode"): helpers.base64_encode,
    ("base64_decode", "base64Decode"): helpers.base64_decode,
    ("base64_url_encode", "base64URLEncode"): helpers.base64_url_encode,
    ("base64_url_decode", "base64URLDecode"): helpers.base64_url_decode,
    ("sha256_hex", "sha256Hex"): helpers.sha256_hex,
    ("by_key", "byKey"): helpers.by_key,
    ("by_tag", "byTag"): helpers.by_tag,
}
# Go argument order for the functions (value last); filters take the piped value first.
_PATTERN_HELPERS = {
    ("regex_match", "regexMatch"): helpers.regex_match,
    ("regex_replace_all", "regexReplaceAll"): helpers.regex_replace_all,
}


def _value_first(function):
    @functools.wraps(function)
    def filter_(value, *arguments):
        return function(*arguments, value)

    return filter_


class _LineEndingLexer(jinja2.lexer.Lexer if jinja2 else object):
    """Jinja2's lexer, giving template text back with the source's own line endings.

    Jinja2 joins the source's lines with LF before lexing; each text token
    starts on a known line, so its n-th LF is the end of line start+n, whose
    original ending is put back.
    """

    def _normalize_newlines(self, value: str) -> str:
        return value

    def tokeniter(self, source, name, filename=None, state=None):
        endings = jinja2.lexer.newline_re.findall(source)
        for lineno, token, value in super().tokeniter(source, name, filename, state):
            if token == jinja2.lexer.TOKEN_DATA and "\n" in value:
                lines = value.split("\n")
                value = lines[0] + "".join(endings[lineno - 1 + number] + line for number, line in enumerate(lines[1:]))
            yield lineno, token, value


class _Environment(jinja2.Environment if jinja2 else object):
    @functools.cached_property
    def lexer(self):
        return _LineEndingLexer(self)


# What a sandboxed render may use, in a process of its own (isolated()): CPU seconds, memory above what the
# daemon had mapped when it forked, seconds of wall clock, and characters of output.
ISOLATED_CPU_SECONDS = 5
ISOLATED_MEMORY = 512 * 1024 * 1024
ISOLATED_SECONDS = 10.0
MAX_OUTPUT = 16 * 1024 * 1024


class _UnfoldedCodeGenerator(jinja2.compiler.CodeGenerator if jinja2 else object):
    """Writes every output expression as code: Jinja2 otherwise evaluates constant ones while compiling (with
    any optimizer setting), which for a sandboxed template would be its work done in the daemon."""

    def _output_child_to_const(self, node, frame, finalize):
        raise jinja2.nodes.Impossible()


class _SandboxedEnvironment(jinja2.sandbox.ImmutableSandboxedEnvironment if jinja2 else object):
    code_generator_class = _UnfoldedCodeGenerator

    @functools.cached_property
    def lexer(self):
        return _LineEndingLexer(self)


# What a sandboxed template may not call: they read the host the renderer runs on, not Consul.
HOST_FUNCTIONS = ("file", "env")


def environment(undefined=None, sandboxed: bool = False):
    if jinja2 is None:
        raise TemplateError(f"the renderer needs Jinja2 (Debian package python3-jinja2): {JINJA2_IMPORT_ERROR}")
    options = {"undefined": undefined or jinja2.StrictUndefined, "keep_trailing_newline": True, "autoescape": False}
    # Not optimized when sandboxed: the optimizer folds constant expressions while compiling, in the daemon, and
    # a sandboxed template's may be `2 ** 10**9` or `"x" | center(10**10)`. All of it runs in isolated().
    env = _SandboxedEnvironment(optimized=False, **options) if sandboxed else _Environment(**options)
    for names, function in _HELPERS.items():
        for name in names:
            env.filters[name] = function
            env.globals[name] = function
    for names, function in _PATTERN_HELPERS.items():
        for name in names:
            env.filters[name] = _value_first(function)
            env.globals[name] = function
    env.globals["timestamp"] = helpers.timestamp
    return env


def _mapped_bytes() -> int:
    """The address space this process has mapped now (VmSize), the base of a child's memory limit."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def isolated(run) -> Execution:
    """run() in a forked child with limits on its CPU time, memory and wall-clock time; its Execution back.

    A sandboxed template cannot reach Python's internals, but it can still
    ask for work: a huge repetition, a regular expression that backtracks for
    ever, a YAML bomb. In the daemon that would starve every thread (Python
    runs one at a time, and a regular expression holds it throughout),
    including the registrator's session renewal. The child takes that instead,
    and is killed at its limits; the render then fails naming the limit.
    """
    read_end, write_end = os.pipe()
    limit = _mapped_bytes() + ISOLATED_MEMORY
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child process; its result is what the tests read
        try:
            os.close(read_end)
            resource.setrlimit(resource.RLIMIT_CPU, (ISOLATED_CPU_SECONDS, ISOLATED_CPU_SECONDS + 1))
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            try:
                execution = run()
            except MemoryError:
                execution = Execution(error=f"MemoryError: the render needed more than {ISOLATED_MEMORY} bytes")
            with os.fdopen(write_end, "wb") as stream:
                stream.write(pickle.dumps(execution, protocol=pickle.HIGHEST_PROTOCOL))
        finally:
            os._exit(0)
    os.close(write_end)
    data, killed = _read_until(read_end, time.monotonic() + ISOLATED_SECONDS)
    if killed:
        os.kill(pid, signal.SIGKILL)
    _pid, status = os.waitpid(pid, 0)
    if not killed and os.WIFEXITED(status) and data:
        return pickle.loads(data)
    if killed:
        reason = f"it ran for more than {ISOLATED_SECONDS:g}s"
    elif os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU:
        reason = f"it used more than {ISOLATED_CPU_SECONDS}s of CPU"
    else:
        reason = f"its process ended without a result ({_ended(status)})"
    return Execution(error=f"render stopped: {reason}")


def _read_until(descriptor: int, deadline: float) -> tuple:
    """(everything read from descriptor until its end, whether the deadline passed first); closes it."""
    chunks = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([descriptor], [], [], left)[0]:
                return b"".join(chunks), True
            chunk = os.read(descriptor, 1 << 20)
            if not chunk:
                return b"".join(chunks), False
            chunks.append(chunk)
    finally:
        os.close(descriptor)


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"


def _bounded_output(chunks) -> str:
    """A sandboxed render's output, failed once it passes MAX_OUTPUT characters."""
    output, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise jinja2.sandbox.SecurityError(f"the output passed {MAX_OUTPUT} characters")
        output.append(chunk)
    return "".join(output)


def _bound(function, scope):
    """function with its scope bound in a closure: unlike a partial's .args, a closure's cells are dunder
    attributes, out of a sandboxed template's reach."""

    def bound(*args, **kwargs):
        return function(scope, *args, **kwargs)

    return bound


class Template:
    """A compiled template. sandboxed: for a template someone else wrote (an app's configuration), which may
    not reach Python's internals (Jinja2's immutable sandbox) nor the host (no file() nor env()). variables:
    names the template may read besides the functions (an app's template reads its KV folder as `prefix`)."""

    def __init__(self, name: str, source: str, undefined=None, sandboxed: bool = False, variables=None):
        self.name = name
        self.source = source
        self.sandboxed = sandboxed
        self.variables = dict(variables or {})
        try:
            self._compiled = environment(undefined, sandboxed).from_string(source)
        except jinja2.TemplateSyntaxError as error:
            raise TemplateError(f"template {name}: syntax error on line {error.lineno}: {error.message}") from None

    def execute(self, brain, quarantine=None) -> Execution:
        """Runs the template on what the brain holds (a sandboxed one in a process of its own, isolated()).

        quarantine maps full paths to values that registered functions must
        leave out (through Scope.admitted(), as routing_table() does): entries
        a candidate failed its check with. An entry whose value has changed
        since is weighed again.
        """
        if self.sandboxed:
            return isolated(lambda: self._execute(brain, quarantine))
        return self._execute(brain, quarantine)

    def _execute(self, brain, quarantine) -> Execution:
        result = Execution()
        scope = Scope(result, brain, quarantine or {})
        context = dict(self.variables)
        context |= {
            name: _bound(function, scope)
            for name, function in _FUNCTIONS.items()
            if not (self.sandboxed and name in HOST_FUNCTIONS)
        }
        try:
            if self.sandboxed:
                result.output = _bounded_output(self._compiled.generate(context))
            else:
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
    # error_on_missing_key false: a missing map key is empty, as consul-template's default (missing_keys.py).
    undefined = None if config.error_on_missing_key else empty_missing_keys()
    return Template(config.name, source, undefined, sandboxed=config.sandboxed, variables=config.variables)
