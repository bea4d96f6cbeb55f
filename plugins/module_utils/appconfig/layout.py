# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""App configuration: the contract between the app module, which publishes what a version renders, and each
node's agent (in the registrator), which renders it for the containers of that node.

Consul KV, under the platform prefix P (default dockyard/):
  P app-config/<service>                the Definition of a version service's configuration (the app module)
  P app-config-status/<node>/<service>  the Status of what the node's agent rendered of it (that agent)
  P app-config-locks/<app>              held by the agent whose node restarts an instance for a change,
                                        so that the app's instances restart one at a time

On every node, under BASE_DIR:
  <service>/rendered/<n>/        the rendered files of the version's n-th destination directory
  <service>/files -> rendered    made once every template has rendered; the containers' mounts name
                                 files/<n>/, so Docker refuses to start one before (its source is missing)
  <service>/token/consul-token   the app's own Consul token, mounted read-only on TOKEN_MOUNT
  <service>/state/               the renderer's max_drop baselines (not mounted)

Every node renders every definition, whether or not it runs the version's
tasks yet, and the app module creates a version's service only once every
node it may be placed on reports the files rendered. A container never starts
with a missing or half-written file: its mount source (files/<n>) does not
exist until every file is rendered, and Docker refuses to start it without
one; each file is replaced whole (written beside it, then renamed).

Everything read from Consul passes parse_definition or parse_status before it
is used: these names become paths on the node and in containers.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from dataclasses import dataclass

BASE_DIR = "/var/lib/dockyard/app-config"
TOKEN_MOUNT = "/run/dockyard"
TOKEN_FILE = "consul-token"
DEFINITIONS = "app-config/"
STATUSES = "app-config-status/"
LOCKS = "app-config-locks/"
ON_CHANGE = ("signal", "restart")
# The signals an app may ask for on a change (names as Docker's kill API takes them).
CHANGE_SIGNALS = ("SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGINT", "SIGQUIT", "SIGTERM")
MAX_TEMPLATES = 16
MAX_TEMPLATE_BYTES = 64 * 1024
MAX_DEFINITION_BYTES = 512 * 1024
MAX_ERROR_TEXT = 2048
MAX_SERVICE = 63  # Swarm's limit on a service name

# A template's name and a rendered file's name: one safe path segment.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# A version's Swarm service, <app>--<version id> (app/spec.py makes it; this is what the agent accepts).
_SERVICE = re.compile(r"[A-Za-z0-9]+(?:[-_]+[A-Za-z0-9]+)*")
# A node's name as the registrator has it (its key segment under instances/).
_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# A directory segment inside a container.
_SEGMENT = re.compile(r"[A-Za-z0-9_@+.-]{1,255}")
# A Consul KV prefix segment.
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9_.@+-]{1,255}")
# Container directories a configuration may not be mounted on: the kernel's, the engine's, and our token's.
FORBIDDEN_DIRECTORIES = ("/proc", "/sys", "/dev", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", TOKEN_MOUNT)
# A Consul ACL token's secret: a UUID.
_TOKEN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class LayoutError(ValueError):
    """A definition, status or name outside its grammar; the message names the field."""


def _match(pattern, value, where: str, grammar: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value) or value in (".", ".."):
        raise LayoutError(f"{where}: expected {grammar}, got {value!r}"[:300])
    return value


def parse_name(value, where: str) -> str:
    return _match(_NAME, value, where, "1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit")


def parse_service(value, where: str = "service") -> str:
    grammar = f"a Swarm service name of letters, digits, '-' and '_', at most {MAX_SERVICE}"
    if isinstance(value, str) and len(value) > MAX_SERVICE:
        raise LayoutError(f"{where}: expected {grammar}, got {value[:80]!r}...")
    return _match(_SERVICE, value, where, grammar)


def parse_node(value, where: str = "node") -> str:
    return _match(_NODE, value, where, "a node name of letters, digits, '.', '_' or '-'")


def parse_directory(value, where: str) -> str:
    """An absolute, normalised directory inside a container, not / nor one the kernel or the platform owns."""
    if not isinstance(value, str) or not value.startswith("/") or posixpath.normpath(value) != value or value == "/":
        raise LayoutError(f"{where}: expected a clean absolute directory other than /, got {value!r}"[:300])
    for segment in value[1:].split("/"):
        if not _SEGMENT.fullmatch(segment) or segment in (".", ".."):
            raise LayoutError(f"{where}: segment {segment!r} is not letters, digits, '_', '@', '+', '.' or '-'"[:300])
    for forbidden in FORBIDDEN_DIRECTORIES:
        if value == forbidden or value.startswith(forbidden + "/") or forbidden.startswith(value + "/"):
            raise LayoutError(f"{where}: {value} would hide or lie inside {forbidden}")
    return value


def parse_destination(value, where: str) -> tuple:
    """(directory, file name) of a rendered file's absolute path inside a container."""
    if not isinstance(value, str) or "/" not in value:
        raise LayoutError(f"{where}: expected an absolute file path inside the container, got {value!r}"[:300])
    directory, name = posixpath.split(value)
    return parse_directory(directory, where), parse_name(name, where)


def parse_prefix(value, where: str) -> str:
    """A Consul KV folder: segments of safe characters, ending in /."""
    if not isinstance(value, str) or not value.endswith("/") or value.startswith("/"):
        raise LayoutError(f"{where}: expected a KV folder such as config/qa/shop/, got {value!r}"[:300])
    for segment in value[:-1].split("/"):
        if not _PREFIX_SEGMENT.fullmatch(segment) or segment in (".", ".."):
            raise LayoutError(f"{where}: segment {segment!r} is not letters, digits, '_', '@', '+', '.' or '-'"[:300])
    return value


def parse_signal(value, where: str) -> str:
    text = str(value).upper() if isinstance(value, str) else value
    if isinstance(text, str) and not text.startswith("SIG"):
        text = "SIG" + text
    if text not in CHANGE_SIGNALS:
        raise LayoutError(f"{where}: expected one of {', '.join(CHANGE_SIGNALS)}, got {value!r}"[:300])
    return text


def _max_drop(value, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise LayoutError(f"{where}: expected a share between 0 and 1, got {value!r}"[:300])
    return float(value)


@dataclass(frozen=True)
class Template:
    """One rendered file: its template text, where it lands in the container, what it reads, what a change does."""

    name: str
    contents: str
    destination: str
    prefix: str
    on_change: str = "signal"
    signal: str = "SIGHUP"
    max_drop: float | None = None

    @property
    def directory(self) -> str:
        return posixpath.dirname(self.destination)

    @property
    def file(self) -> str:
        return posixpath.basename(self.destination)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "contents": self.contents,
            "destination": self.destination,
            "prefix": self.prefix,
            "on_change": self.on_change,
            "signal": self.signal,
            "max_drop": self.max_drop,
        }


def parse_template(raw, where: str) -> Template:
    if not isinstance(raw, dict):
        raise LayoutError(f"{where}: expected a mapping")
    unknown = sorted(set(raw) - {"name", "contents", "destination", "prefix", "on_change", "signal", "max_drop"})
    if unknown:
        raise LayoutError(f"{where}: unknown field(s) {', '.join(unknown)}")
    contents = raw.get("contents")
    if not isinstance(contents, str) or len(contents.encode("utf-8", "surrogatepass")) > MAX_TEMPLATE_BYTES:
        raise LayoutError(f"{where}.contents: expected the template's text, at most {MAX_TEMPLATE_BYTES} bytes")
    if "\0" in contents:
        raise LayoutError(f"{where}.contents: holds a NUL character")
    destination = raw.get("destination")
    parse_destination(destination, f"{where}.destination")
    on_change = raw.get("on_change", "signal")
    if on_change not in ON_CHANGE:
        raise LayoutError(f"{where}.on_change: expected one of {', '.join(ON_CHANGE)}, got {on_change!r}"[:300])
    return Template(
        name=parse_name(raw.get("name"), f"{where}.name"),
        contents=contents,
        destination=destination,
        prefix=parse_prefix(raw.get("prefix"), f"{where}.prefix"),
        on_change=on_change,
        signal=parse_signal(raw.get("signal", "SIGHUP"), f"{where}.signal"),
        max_drop=_max_drop(raw.get("max_drop"), f"{where}.max_drop"),
    )


def check_templates(templates: tuple, where: str) -> tuple:
    """Templates whose names and destinations are unique, and whose directories do not nest (each is one mount)."""
    if not templates or len(templates) > MAX_TEMPLATES:
        raise LayoutError(f"{where}: expected 1 to {MAX_TEMPLATES} templates")
    names = [template.name for template in templates]
    destinations = [template.destination for template in templates]
    for label, values in (("name", names), ("destination", destinations)):
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            raise LayoutError(f"{where}: each template's {label} must be unique, repeated: {', '.join(repeated)}")
    directories = sorted({template.directory for template in templates})
    for outer in directories:
        for inner in directories:
            if inner.startswith(outer + "/"):
                raise LayoutError(f"{where}: directory {inner} lies inside {outer}; each is mounted whole, apart")
    return templates


@dataclass(frozen=True)
class Definition:
    """What one version service renders (P app-config/<service>), written by the app module."""

    app: str
    service: str
    token: str
    templates: tuple

    @property
    def directories(self) -> tuple:
        """The containers' destination directories, sorted: the n-th is mounted from files/<n>/."""
        return tuple(sorted({template.directory for template in self.templates}))

    def directory_index(self, template: Template) -> int:
        return self.directories.index(template.directory)

    def to_json(self) -> bytes:
        document = {
            "app": self.app,
            "service": self.service,
            "token": self.token,
            "templates": [template.to_dict() for template in self.templates],
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def parse_definition(raw: bytes, service: str) -> Definition:
    """The definition stored under P app-config/<service>; LayoutError names what is wrong."""
    where = f"app config of {service}"
    if len(raw) > MAX_DEFINITION_BYTES:
        raise LayoutError(f"{where}: above {MAX_DEFINITION_BYTES} bytes")
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as error:  # nesting deep enough for the latter fits in the size bound
        raise LayoutError(f"{where}: not JSON ({error})") from None
    if not isinstance(document, dict):
        raise LayoutError(f"{where}: expected a JSON object")
    unknown = sorted(set(document) - {"app", "service", "token", "templates"})
    if unknown:
        raise LayoutError(f"{where}: unknown field(s) {', '.join(unknown)}")
    if document.get("service") != service:
        raise LayoutError(f"{where}: names service {document.get('service')!r}, not the key's")
    app = parse_name(document.get("app"), f"{where}.app")
    parse_service(service, where)
    if not service.startswith(app + "--"):
        raise LayoutError(f"{where}: service {service} is not a version of app {app}")
    token = document.get("token")
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise LayoutError(f"{where}.token: expected a Consul token (a UUID)")
    raw_templates = document.get("templates")
    if not isinstance(raw_templates, list):
        raise LayoutError(f"{where}.templates: expected a list")
    templates = tuple(parse_template(item, f"{where}.templates[{index}]") for index, item in enumerate(raw_templates))
    return Definition(app=app, service=service, token=token, templates=check_templates(templates, where))


@dataclass(frozen=True)
class Status:
    """What a node's agent rendered of a version (P app-config-status/<node>/<service>).

    rendered: every template has a live file. key_index: the highest
    ModifyIndex under the templates' prefixes when the files were last
    rendered (None before the first render). errors: template name -> why its
    last render failed (the live file, if any, is the last good one).
    """

    node: str
    service: str
    rendered: bool
    key_index: int | None
    errors: tuple  # (template name, message) pairs, sorted
    updated: float

    @property
    def ready(self) -> bool:
        return self.rendered and not self.errors

    def to_json(self) -> bytes:
        document = {
            "node": self.node,
            "service": self.service,
            "rendered": self.rendered,
            "key_index": self.key_index,
            "errors": dict(self.errors),
            "updated": self.updated,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def parse_status(raw: bytes, node: str, service: str) -> Status:
    where = f"app config status of {service} on {node}"
    parse_node(node, where)
    parse_service(service, where)
    if len(raw) > MAX_DEFINITION_BYTES:
        raise LayoutError(f"{where}: above {MAX_DEFINITION_BYTES} bytes")
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise LayoutError(f"{where}: not JSON") from None
    if not isinstance(document, dict) or document.get("node") != node or document.get("service") != service:
        raise LayoutError(f"{where}: not the status its key names")
    rendered, key_index, errors, updated = (
        document.get(name) for name in ("rendered", "key_index", "errors", "updated")
    )
    if not isinstance(rendered, bool):
        raise LayoutError(f"{where}.rendered: expected true or false")
    if key_index is not None and (isinstance(key_index, bool) or not isinstance(key_index, int) or key_index < 0):
        raise LayoutError(f"{where}.key_index: expected a Consul index")
    if not isinstance(errors, dict) or not all(isinstance(v, str) for v in errors.values()):
        raise LayoutError(f"{where}.errors: expected template name -> message")
    for name in errors:
        parse_name(name, f"{where}.errors")
    if isinstance(updated, bool) or not isinstance(updated, (int, float)) or not math.isfinite(updated):
        raise LayoutError(f"{where}.updated: expected a time")
    pairs = tuple(sorted((name, message[:MAX_ERROR_TEXT]) for name, message in errors.items()))
    return Status(node=node, service=service, rendered=rendered, key_index=key_index, errors=pairs, updated=updated)


# -- names of things -------------------------------------------------------------------
def definition_key(kv_prefix: str, service: str) -> str:
    return f"{kv_prefix}{DEFINITIONS}{parse_service(service)}"


def status_key(kv_prefix: str, node: str, service: str) -> str:
    return f"{kv_prefix}{STATUSES}{parse_node(node)}/{parse_service(service)}"


def lock_key(kv_prefix: str, app: str) -> str:
    return f"{kv_prefix}{LOCKS}{parse_name(app, 'app')}"


def service_dir(service: str, base: str = BASE_DIR) -> str:
    return posixpath.join(base, parse_service(service))


def rendered_dir(service: str, index: int, base: str = BASE_DIR) -> str:
    """Where the agent renders the n-th directory's files."""
    return posixpath.join(service_dir(service, base), "rendered", str(index))


def files_dir(service: str, index: int, base: str = BASE_DIR) -> str:
    """The n-th directory's mount source: through the files link, which exists once all is rendered."""
    return posixpath.join(service_dir(service, base), "files", str(index))


def token_dir(service: str, base: str = BASE_DIR) -> str:
    return posixpath.join(service_dir(service, base), "token")


def state_dir(service: str, base: str = BASE_DIR) -> str:
    return posixpath.join(service_dir(service, base), "state")


def app_policy_name(app: str, environment: str | None) -> str:
    """The Consul ACL policy (and the token's description) of an app's configuration token."""
    scope = f"{environment}-{app}" if environment else app
    return f"dockyard-app-config-{scope}"
