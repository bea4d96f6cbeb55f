# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app spec: the app module's options parsed into one frozen, typed value.

Everything is checked here, before anything changes, and every refusal names
the option (`health.path: ...`, `constraints[2]: ...`). Names, hosts and ports
go through the routing schema's parsers (plugins/module_utils/daemon/routing.py,
the one gate for data that reaches HAProxy) and durations through the
platform's one duration grammar (daemon/config.py), so the spec can accept
nothing a router or a daemon would later refuse.

Input is the module's options as Ansible passes them: an option left out may
be absent or None, and takes its default. Unknown keys, at the top or in a
nested dict, are refused by name, so a typo is an error rather than a default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field

from ..appconfig import layout
from ..daemon.config import ConfigError, duration
from ..daemon.routing import (
    MAX_INTERVAL_MS,
    MIN_INTERVAL_MS,
    RouteError,
    parse_check_text,
    parse_host,
    parse_name,
    parse_path,
    parse_port,
)
from ..renderer.config import share

OPTION_KEYS = (
    "name",
    "image",
    "instances",
    "cpus",
    "mem",
    "env",
    "args",
    "labels",
    "container_port",
    "service_port",
    "hosts",
    "health",
    "constraints",
    "upgrade",
    "stop_grace_period",
    "registry_auth",
    "environment",
    "config",
    "config_kv_prefix",
)
CONFIG_KEYS = ("name", "contents", "destination", "prefix", "on_change", "signal", "max_drop")
DEFAULT_CONFIG_KV_PREFIX = "config/"
HEALTH_KEYS = ("path", "expect_status", "body_contains", "command", "interval", "timeout", "grace_period", "failures")
UPGRADE_KEYS = ("minimum_health_capacity", "maximum_over_capacity", "drain_timeout")
REGISTRY_AUTH_KEYS = ("username", "password")
# Not a module option: the deployer sets the restart generation (state=restarted), and specs read back from the
# ledger and from a service's label carry it.
SPEC_KEYS = (*OPTION_KEYS, "restart")

# Marathon's defaults for an app that leaves them out.
DEFAULT_CPUS = 1.0
DEFAULT_MEM_MIB = 128
# dockerd refuses a memory limit or reservation below 6 MiB (linuxMinMemory, 6291456 bytes).
MIN_MEM_MIB = 6
MAX_MEM_MIB = 1024 * 1024
MAX_CPUS = 1024
MAX_INSTANCES = 100_000
MAX_HOSTS = 256
MAX_ARGS = 256
MAX_ENV = 512
MAX_LABELS = 256
MAX_CONSTRAINTS = 32
MAX_TEXT = 32 * 1024  # an env value, an argument or a health command
# The whole spec as JSON: it rides in a Swarm service label and in every ledger entry (ZooKeeper refuses a
# write above 1 MiB), so its size is bounded here, before anything changes, rather than by the first of them.
MAX_SPEC_BYTES = 128 * 1024
MAX_LABEL_VALUE = 4096
# Swarm service names are DNS labels (at most 63 characters) and each version
# runs as the service <name>--<version id>.
VERSION_ID_LENGTH = 12
MAX_SERVICE_NAME = 63
MAX_NAME = MAX_SERVICE_NAME - len("--") - VERSION_ID_LENGTH
MAX_DURATION_MS = 3_600_000
MAX_RESTART = 1_000_000

# Names Swarm takes for a service: letters and digits, runs of '-' or '_' between them. (Swarm's
# own pattern nests its quantifiers and backtracks exponentially; this one says the same linearly.)
_SERVICE_NAME = re.compile(r"[A-Za-z0-9]+(?:[-_]+[A-Za-z0-9]+)*")
# A POSIX-style environment variable name.
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
# A container label key: reverse-DNS words such as com.example.team or Marathon's HAPROXY_GROUP.
_LABEL_KEY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,126}[A-Za-z0-9])?")
# The platform's own container labels (the registrator reads them): an app may not set them.
RESERVED_LABEL_PREFIXES = ("org.dockyard.", "dockyard.")

# A Docker image reference (distribution's reference grammar), with a tag, a sha256 digest, or both.
_DOMAIN_COMPONENT = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[_.]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::(?P<port>[0-9]{{1,5}}))?)/)?"
    rf"(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?"
)
MAX_IMAGE_NAME = 255

# Constraints in the option's form, close to Swarm's own syntax.
_EQUALITY = re.compile(r"(?P<attribute>node\.hostname|node\.labels\.(?P<label>[^=!]*))(?P<operator>==|!=)(?P<value>.*)")
_MAX_PER_NODE = re.compile(r"max_per_node=(?P<count>[0-9]|[1-9][0-9]{1,5})")
_SPREAD = re.compile(r"spread=node\.labels\.(?P<label>.*)")


class SpecError(ValueError):
    """An app spec that cannot be used; `field` names the option, the message says why."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.field = where
        self.reason = reason


def _shown(value) -> str:
    """A value for an error message: its repr, cut short (hostile values can be huge)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _reason(error: Exception, where: str) -> str:
    """An error's message without the field name it starts with."""
    message = str(error)
    return message[len(where) + 2 :] if message.startswith(f"{where}: ") else message


def _routed(parser, value, where: str, what: str = ""):
    """A value through one of the routing schema's parsers, its refusal as a SpecError (what: which part)."""
    try:
        return parser(value, where)
    except RouteError as error:
        raise SpecError(where, what + _reason(error, where)) from None


def _only(raw, allowed: tuple, where: str) -> dict:
    if not isinstance(raw, dict):
        raise SpecError(where, "expected a dict with {}, got {}".format(", ".join(allowed), _shown(raw)))
    unknown = sorted(str(key) for key in set(raw) - set(allowed))
    if unknown:
        raise SpecError(where, "unknown key(s) {} (allowed: {})".format(", ".join(unknown), ", ".join(allowed)))
    return raw


def _given(raw: dict, key: str, default):
    value = raw.get(key)
    return default if value is None else value


def _text(value, where: str, limit: int = MAX_TEXT) -> str:
    """Free text (an argument, an env value, a command): a string without NUL, bounded."""
    if not isinstance(value, str):
        raise SpecError(where, f"expected a string, got {_shown(value)}")
    if "\x00" in value or not _encodable(value):
        raise SpecError(where, "expected UTF-8 text without NUL")
    if len(value.encode("utf-8")) > limit:
        raise SpecError(where, f"expected at most {limit} bytes")
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def milliseconds(value, where: str, least_ms: int = 0, most_ms: int = MAX_DURATION_MS) -> int:
    """Whole milliseconds from a duration ("500ms", "5s", "1m", or a number of seconds), bounded."""
    try:
        seconds = duration(value, where)
    except ConfigError as error:
        raise SpecError(where, _reason(error, where)) from None
    total = seconds * 1000
    if abs(total - round(total)) > 1e-6:
        raise SpecError(where, f"expected whole milliseconds, got {_shown(value)}")
    if not least_ms <= round(total) <= most_ms:
        raise SpecError(where, f"must lie between {duration_text(least_ms)} and {duration_text(most_ms)}")
    return round(total)


def duration_text(ms: int) -> str:
    """A duration in the platform's grammar, in whole seconds when it is some."""
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


# -- the value ------------------------------------------------------------------------
@dataclass(frozen=True)
class Resources:
    """CPUs and memory, each both the limit and the reservation: an app gets what it asked for and no more."""

    cpus: float = DEFAULT_CPUS
    mem_mib: int = DEFAULT_MEM_MIB


@dataclass(frozen=True)
class Health:
    """The app's own health check: an HTTP GET of path (expecting a status, optionally a text) or a command."""

    path: str | None = None
    expect_status: int = 200
    body_contains: str | None = None
    command: str | None = None
    interval_ms: int = 5000
    timeout_ms: int = 2000
    grace_period_ms: int = 10000
    failures: int = 3

    def to_dict(self) -> dict:
        check = {"path": self.path, "expect_status": self.expect_status} if self.path else {"command": self.command}
        if self.body_contains is not None:
            check["body_contains"] = self.body_contains
        return {
            **check,
            "interval": duration_text(self.interval_ms),
            "timeout": duration_text(self.timeout_ms),
            "grace_period": duration_text(self.grace_period_ms),
            "failures": self.failures,
        }


@dataclass(frozen=True)
class Constraint:
    """Where tasks may run: equals / not_equals on a node attribute, max_per_node, or spread over a node label.

    attribute is `node.hostname` or `node.labels.<name>` (Swarm's names);
    value is the compared text, the count of max_per_node, or None for spread.
    Swarm counts max_per_node and spreads per service, that is per version.
    """

    kind: str
    attribute: str | None = None
    value: str | int | None = None

    @property
    def text(self) -> str:
        if self.kind == "max_per_node":
            return f"max_per_node={self.value}"
        if self.kind == "spread":
            return f"spread={self.attribute}"
        return "{}{}{}".format(self.attribute, "==" if self.kind == "equals" else "!=", self.value)


@dataclass(frozen=True)
class Upgrade:
    """How a roll steps, in Marathon's terms, and how long a stopping instance may finish its work.

    minimum_health_capacity: the share of `instances` that must stay healthy
    throughout a roll (rounded up); maximum_over_capacity: the share of
    `instances` that may run beyond it at any moment. Both 0.0-1.0, Marathon's
    default 1.0 each: start every new instance beside the old ones, then stop
    the old. drain_timeout: how long an instance that no longer gets new
    requests may finish those it serves before its stop signal.
    """

    minimum_health_capacity: float = 1.0
    maximum_over_capacity: float = 1.0
    # 30s: as long as a router waits on a silent server (haproxy_timeouts.server), so no request
    # already sent is cut shorter than a router would cut it; every router has reloaded without the
    # instance within seconds, and a roll of many steps still takes minutes, not hours.
    drain_timeout_ms: int = 30000

    def to_dict(self) -> dict:
        return {
            "minimum_health_capacity": self.minimum_health_capacity,
            "maximum_over_capacity": self.maximum_over_capacity,
            "drain_timeout": duration_text(self.drain_timeout_ms),
        }


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for the image's registry: a secret, never shown (repr hides the password)."""

    username: str
    password: str = field(repr=False)


# Fields whose change needs nothing but a change of the instance count or of the route.
SCALE_FIELDS = ("instances",)
ROUTE_FIELDS = ("hosts", "service_port")


@dataclass(frozen=True)
class AppSpec:
    """One app as the module deploys it: each version runs as the Swarm service <name>--<version id>."""

    name: str
    image: str
    instances: int = 1
    resources: Resources = field(default_factory=Resources)
    env: tuple = ()  # (key, value) pairs, sorted by key
    args: tuple = ()
    labels: tuple = ()  # (key, value) pairs, sorted by key
    container_port: int | None = None
    service_port: int | None = None
    hosts: tuple = ()
    health: Health | None = None
    constraints: tuple = ()  # Constraint, sorted by their text
    upgrade: Upgrade = field(default_factory=Upgrade)
    stop_grace_period_ms: int = 10000
    # The restart generation: state=restarted raises it, so fresh containers of the same options are a new version.
    restart: int = 0
    # The environment (qa, staging, prod) whose configuration the app reads: config/<environment>/<name>/.
    environment: str | None = None
    config: tuple = ()  # appconfig.layout.Template, each with its prefix resolved
    config_kv_prefix: str = DEFAULT_CONFIG_KV_PREFIX
    # Kept out of comparisons, version and to_dict: a secret, and the containers do not carry it.
    registry_auth: RegistryAuth | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """The spec in the options' own form, normalised (parse_spec gives it back); registry_auth left out.

        restart only when above 0, so that a spec never restarted reads as it did before generations existed.
        """
        document = {
            "name": self.name,
            "image": self.image,
            "instances": self.instances,
            "cpus": self.resources.cpus,
            "mem": self.resources.mem_mib,
            "env": dict(self.env),
            "args": list(self.args),
            "labels": dict(self.labels),
            "container_port": self.container_port,
            "service_port": self.service_port,
            "hosts": list(self.hosts),
            "health": self.health.to_dict() if self.health else None,
            "constraints": [constraint.text for constraint in self.constraints],
            "upgrade": self.upgrade.to_dict(),
            "stop_grace_period": duration_text(self.stop_grace_period_ms),
        }
        if self.restart:
            document["restart"] = self.restart
        # Each only when used, so that the spec of an app without configuration reads as it did before.
        if self.environment:
            document["environment"] = self.environment
        if self.config:
            document["config"] = [template.to_dict() for template in self.config]
            if self.config_kv_prefix != DEFAULT_CONFIG_KV_PREFIX:
                document["config_kv_prefix"] = self.config_kv_prefix
        return document

    @property
    def config_root(self) -> str:
        """The KV folder of this app's configuration; every template's prefix lies in it."""
        scope = f"{self.environment}/" if self.environment else ""
        return f"{self.config_kv_prefix}{scope}{self.name}/"

    def _container_shape(self) -> dict:
        """What the version id digests: everything a running container is made from.

        In: image, args, env, cpus and mem, health (Docker's HEALTHCHECK is part
        of the container), labels and container_port (both written on the
        container: the registrator reads the port there), stop_grace_period and
        upgrade.drain_timeout (the container's drain label and Docker's stop
        grace, drain + grace, are fixed when it is created), and constraints
        (Swarm reschedules every task when placement changes; as a new version
        the change is stepped and drained like any other), and the restart
        generation when above 0 (generation 0 is left out so that every
        version id from before generations existed stays what it was: a
        deployed app must not roll on an upgrade of the module).
        Out: instances (a scale of the same containers), hosts and service_port
        (the route, read by the routers, not the containers), the rest of
        upgrade (how a roll steps, not what it rolls to), and registry_auth
        (how the image is fetched, not what runs; and a secret). The config
        templates (with their prefixes, hence the environment) when there are
        any: each version renders its own files; the keys' values are not in
        it (a change of a key reaches running instances without a new version).
        """
        shape = {
            "image": self.image,
            "args": list(self.args),
            "env": dict(self.env),
            "cpus": self.resources.cpus,
            "mem": self.resources.mem_mib,
            "health": self.health.to_dict() if self.health else None,
            "labels": dict(self.labels),
            "container_port": self.container_port,
            "stop_grace_period": self.stop_grace_period_ms,
            "drain_timeout": self.upgrade.drain_timeout_ms,
            "constraints": [constraint.text for constraint in self.constraints],
        }
        if self.restart:
            shape["restart"] = self.restart
        if self.config:
            # The templates are mounted from a directory made for the version: a new template is a new version.
            shape["config"] = [template.to_dict() for template in self.config]
        return shape

    @property
    def version_id(self) -> str:
        """A short digest of the container shape: equal shapes share it, whatever the options' order."""
        canonical = json.dumps(self._container_shape(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:VERSION_ID_LENGTH]

    @property
    def service_name(self) -> str:
        """The Swarm service that runs this version."""
        return f"{self.name}--{self.version_id}"

    def diff(self, other: AppSpec) -> SpecDiff:
        """What changes from this spec (the running one) to other (the wanted one)."""
        if other.name != self.name:
            raise ValueError(f"cannot compare app {self.name} with app {other.name}")
        # restart with its 0, which to_dict leaves out, so that a first restart reads restart: 0 -> 1.
        before = _flat({**self.to_dict(), "restart": self.restart})
        after = _flat({**other.to_dict(), "restart": other.restart})
        changed = tuple(sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key)))
        return SpecDiff(
            changed=changed,
            before={key: before.get(key) for key in changed},
            after={key: after.get(key) for key in changed},
            version_changed=self.version_id != other.version_id,
        )


def _flat(spec: dict, prefix: str = "") -> dict:
    """Nested dicts flattened to dotted keys (health.path, env.DEBUG); lists stay whole; an empty dict is no key."""
    flat = {}
    for key, value in spec.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@dataclass(frozen=True)
class SpecDiff:
    """The fields that differ between two specs of one app (dotted, as in to_dict), with both sides' values.

    Deciding what to do: `unchanged` → touch nothing; `rolls` (the version
    differs) → start the new version, drain and stop the old; otherwise
    `scales` → change the instance count only, and `routes` → rewrite the
    route only (both may hold). What else may differ (upgrade's capacities)
    changes how the next roll steps and nothing now.
    """

    changed: tuple
    before: dict
    after: dict
    version_changed: bool

    @property
    def unchanged(self) -> bool:
        return not self.changed

    @property
    def rolls(self) -> bool:
        return self.version_changed

    @property
    def scales(self) -> bool:
        return any(key in SCALE_FIELDS for key in self.changed)

    @property
    def routes(self) -> bool:
        return any(key.split(".")[0] in ROUTE_FIELDS for key in self.changed)


# -- parsing --------------------------------------------------------------------------
def parse_name_option(value, where: str = "name") -> str:
    """An app name: the routing schema's name, that also makes a Swarm service name with its version id."""
    name = _routed(parse_name, value, where)
    if len(name) > MAX_NAME or not _SERVICE_NAME.fullmatch(name):
        raise SpecError(
            where,
            f"{name!r} cannot name a Swarm service: letters and digits with '-' or '_' between them,"
            f" at most {MAX_NAME} (the service is <name>--<version id>)",
        )
    return name


def parse_image(value, where: str = "image") -> str:
    """A Docker image reference pinned by an explicit tag (never latest) or a sha256 digest."""
    match = _IMAGE.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise SpecError(where, f"expected an image reference such as registry:5000/team/app:1.4.2, got {_shown(value)}")
    domain, path = match.group("domain"), match.group("path")
    name = f"{domain}/{path}" if domain else path
    if len(name) > MAX_IMAGE_NAME:
        raise SpecError(where, f"the image name is longer than {MAX_IMAGE_NAME} characters")
    # Docker takes the first part for a registry only when it looks like a host: a '.', a ':' or localhost.
    looks_like_host = "." in domain or ":" in domain or domain == "localhost" if domain else True
    if not looks_like_host and not re.fullmatch(_PATH_COMPONENT, domain):
        raise SpecError(where, f"{value!r}: {domain!r} is neither a registry host nor a lower-case name")
    port = match.group("port")
    if port is not None and not 1 <= int(port) <= 65535:
        raise SpecError(where, f"{value!r}: registry port {port} is not 1-65535")
    tag, digest = match.group("tag"), match.group("digest")
    if tag is not None and tag.lower() == "latest":
        raise SpecError(where, f"{value!r} uses the tag latest, which moves: give an explicit tag or a digest")
    if tag is None and digest is None:
        raise SpecError(where, f"{value!r} has no tag: give an explicit tag or a digest (never latest)")
    return value


def parse_instances(value, where: str = "instances") -> int:
    if not _integer(value) or not 0 <= value <= MAX_INSTANCES:
        raise SpecError(where, f"expected a whole number 0-{MAX_INSTANCES}, got {_shown(value)}")
    return value


def parse_restart(value, where: str = "restart") -> int:
    """A restart generation: state=restarted makes the next, a whole number 0-MAX_RESTART."""
    if not _integer(value) or not 0 <= value <= MAX_RESTART:
        raise SpecError(where, f"expected a whole number 0-{MAX_RESTART}, got {_shown(value)}")
    return value


def parse_cpus(value, where: str = "cpus") -> float:
    """CPUs, to the thousandth (Docker counts them in billionths; a thousandth is a useful floor)."""
    if not _number(value) or not 0 < value <= MAX_CPUS:
        raise SpecError(where, f"expected a number of CPUs above 0 and at most {MAX_CPUS}, got {_shown(value)}")
    if abs(value * 1000 - round(value * 1000)) > 1e-6:
        raise SpecError(where, f"expected at most three decimals, got {_shown(value)}")
    return round(float(value), 3)


def parse_mem(value, where: str = "mem") -> int:
    """Memory in whole MiB (Marathon's unit), at least Docker's minimum of 6 MiB."""
    if not _number(value) or value != int(value):
        raise SpecError(where, f"expected whole MiB, got {_shown(value)}")
    if not MIN_MEM_MIB <= value <= MAX_MEM_MIB:
        raise SpecError(
            where, f"expected {MIN_MEM_MIB}-{MAX_MEM_MIB} MiB (Docker refuses less than 6 MiB), got {value}"
        )
    return int(value)


def _pairs(raw, where: str, limit: int, parse_key, parse_value) -> tuple:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or len(raw) > limit:
        raise SpecError(where, f"expected a dict of at most {limit} entries, got {_shown(raw)}")
    pairs = []
    for key in raw:
        parse_key(key, where)
        pairs.append((key, parse_value(raw[key], f"{where}.{key}")))
    return tuple(sorted(pairs))


def _env_key(key, where: str) -> None:
    if not isinstance(key, str) or not _ENV_KEY.fullmatch(key):
        raise SpecError(where, f"key {_shown(key)}: expected a variable name (letters, digits, '_'; no leading digit)")


def _env_value(value, where: str) -> str:
    # A YAML number is meant as its digits; a YAML boolean's spelling is ambiguous (yes, True, true).
    if _integer(value):
        return str(value)
    if not isinstance(value, str):
        raise SpecError(where, f"expected a string (quote it in YAML), got {_shown(value)}")
    return _text(value, where)


def _label_key(key, where: str) -> None:
    if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
        raise SpecError(where, f"key {_shown(key)}: expected letters, digits, '.', '_', '/' or '-' (at most 128)")
    if key.startswith(RESERVED_LABEL_PREFIXES):
        owned = " and ".join(RESERVED_LABEL_PREFIXES)
        raise SpecError(where, f"key {key!r}: labels under {owned} are the platform's own")


def _label_value(value, where: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_LABEL_VALUE or not value.isprintable():
        raise SpecError(where, f"expected printable text of at most {MAX_LABEL_VALUE} characters, got {_shown(value)}")
    return value


def _args(raw, where: str = "args") -> tuple:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_ARGS:
        raise SpecError(where, f"expected a list of at most {MAX_ARGS} strings, got {_shown(raw)}")
    return tuple(_text(value, f"{where}[{index}]") for index, value in enumerate(raw))


def _hosts(raw, where: str = "hosts") -> tuple:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_HOSTS:
        raise SpecError(where, f"expected a list of at most {MAX_HOSTS} DNS names, got {_shown(raw)}")
    hosts = []
    for index, value in enumerate(raw):
        host = _routed(parse_host, value, f"{where}[{index}]")
        if host not in hosts:
            hosts.append(host)
    return tuple(hosts)


def _port(value, where: str) -> int | None:
    return None if value is None else _routed(parse_port, value, where)


def parse_health_path(value, where: str = "health.path") -> str:
    """A path the routers' HAProxy can send as one word: the routing schema's own path grammar."""
    return _routed(parse_path, value, where)


def _health(raw, where: str = "health") -> Health | None:
    if raw is None:
        return None
    raw = _only(raw, HEALTH_KEYS, where)
    path, command = raw.get("path"), raw.get("command")
    if (path is None) == (command is None):
        raise SpecError(where, "give exactly one of path (an HTTP check) or command")
    body = raw.get("body_contains")
    if command is not None:
        command = _text(command, f"{where}.command")
        if not command.strip():
            raise SpecError(f"{where}.command", "expected a shell command, got an empty one")
        for key in ("expect_status", "body_contains"):
            if raw.get(key) is not None:
                raise SpecError(f"{where}.{key}", "belongs to an HTTP check (health.path), not to a command")
    else:
        path = parse_health_path(path, f"{where}.path")
    status = _given(raw, "expect_status", 200)
    if not _integer(status) or not 100 <= status <= 599:
        raise SpecError(f"{where}.expect_status", f"expected an HTTP status 100-599, got {_shown(status)}")
    if body is not None:
        _routed(parse_check_text, body, f"{where}.body_contains")
    failures = _given(raw, "failures", 3)
    if not _integer(failures) or not 1 <= failures <= 100:
        raise SpecError(f"{where}.failures", f"expected a whole number 1-100, got {_shown(failures)}")
    interval_ms = milliseconds(_given(raw, "interval", "5s"), f"{where}.interval", MIN_INTERVAL_MS, MAX_INTERVAL_MS)
    timeout_ms = milliseconds(_given(raw, "timeout", "2s"), f"{where}.timeout", MIN_INTERVAL_MS, MAX_INTERVAL_MS)
    return Health(
        path=path,
        expect_status=status,
        body_contains=body,
        command=command,
        interval_ms=interval_ms,
        timeout_ms=timeout_ms,
        grace_period_ms=milliseconds(_given(raw, "grace_period", "10s"), f"{where}.grace_period"),
        failures=failures,
    )


def parse_constraint(value, where: str) -> Constraint:
    """One constraint, in Swarm's words.

    node.labels.<name>==<value> and !=, node.hostname==<name> and !=,
    max_per_node=<n> (max_per_node=1: one per host), spread=node.labels.<name>.
    """
    if not isinstance(value, str):
        raise SpecError(where, f"expected a constraint string such as node.labels.zone==eu-1, got {_shown(value)}")
    equality, most, spread = _EQUALITY.fullmatch(value), _MAX_PER_NODE.fullmatch(value), _SPREAD.fullmatch(value)
    if equality:
        if equality.group("label") is not None:
            _routed(parse_name, equality.group("label"), where, "node label: ")
        compared = _routed(parse_name, equality.group("value"), where, "value: ")
        kind = "equals" if equality.group("operator") == "==" else "not_equals"
        return Constraint(kind, equality.group("attribute"), compared)
    if most:
        count = int(most.group("count"))
        if not 1 <= count <= MAX_INSTANCES:
            raise SpecError(where, f"max_per_node must be 1-{MAX_INSTANCES}, got {count}")
        return Constraint("max_per_node", None, count)
    if spread:
        label = _routed(parse_name, spread.group("label"), where, "node label: ")
        return Constraint("spread", f"node.labels.{label}")
    raise SpecError(
        where,
        "expected node.labels.<name>==<value>, node.labels.<name>!=<value>, node.hostname==<name>,"
        f" node.hostname!=<name>, max_per_node=<n> or spread=node.labels.<name>, got {_shown(value)}",
    )


def _constraints(raw, where: str = "constraints") -> tuple:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_CONSTRAINTS:
        raise SpecError(where, f"expected a list of at most {MAX_CONSTRAINTS} constraints, got {_shown(raw)}")
    parsed = [parse_constraint(value, f"{where}[{index}]") for index, value in enumerate(raw)]
    if sum(constraint.kind == "max_per_node" for constraint in parsed) > 1:
        raise SpecError(where, "max_per_node given more than once")
    # Swarm applies them all (and spreads in order): only spreads keep their order.
    spreads = [constraint for constraint in parsed if constraint.kind == "spread"]
    others = sorted({constraint for constraint in parsed if constraint.kind != "spread"}, key=lambda item: item.text)
    return tuple(others) + tuple(dict.fromkeys(spreads))


def _capacity(raw: dict, key: str, where: str) -> float:
    value = _given(raw, key, 1.0)
    if not _number(value) or not 0 <= value <= 1:
        raise SpecError(f"{where}.{key}", f"expected a share 0.0-1.0, got {_shown(value)}")
    return float(value)


def _upgrade(raw, where: str = "upgrade") -> Upgrade:
    raw = _only({} if raw is None else raw, UPGRADE_KEYS, where)
    least = _capacity(raw, "minimum_health_capacity", where)
    over = _capacity(raw, "maximum_over_capacity", where)
    if least == 1.0 and over == 0.0:
        raise SpecError(
            where, "minimum_health_capacity 1.0 with maximum_over_capacity 0.0 lets a roll neither stop nor start"
        )
    drain = milliseconds(_given(raw, "drain_timeout", "30s"), f"{where}.drain_timeout")
    return Upgrade(minimum_health_capacity=least, maximum_over_capacity=over, drain_timeout_ms=drain)


def _registry_auth(raw, where: str = "registry_auth") -> RegistryAuth | None:
    if raw is None:
        return None
    raw = _only(raw, REGISTRY_AUTH_KEYS, where)
    username, password = raw.get("username"), raw.get("password")
    if not isinstance(username, str) or not username or not username.isprintable() or len(username) > 256:
        raise SpecError(f"{where}.username", "expected a user name (printable, at most 256 characters)")
    # Never the value in a message: it is a secret.
    if (
        not isinstance(password, str)
        or not password
        or "\x00" in password
        or len(password) > 4096
        or not _encodable(password)
    ):
        raise SpecError(f"{where}.password", "expected a non-empty password without NUL (at most 4096 characters)")
    return RegistryAuth(username=username, password=password)


def named(error: ValueError) -> SpecError:
    """A SpecError from a LayoutError or ConfigError, whose messages start with the field they name."""
    field_name, _colon, reason = str(error).partition(": ")
    return SpecError(field_name, reason)


def _environment(raw) -> str | None:
    if raw is None or raw == "":
        return None
    return _routed(parse_name, raw, "environment")


def _config_kv_prefix(raw) -> str:
    try:
        return layout.parse_prefix(raw, "config_kv_prefix")
    except layout.LayoutError as error:
        raise named(error) from None


def _config_template(raw, index: int, root: str):
    where = f"config[{index}]"
    raw = _only(raw, CONFIG_KEYS, where)
    destination = raw.get("destination")
    default_name = destination.rsplit("/", 1)[-1] if isinstance(destination, str) else None
    max_drop = raw.get("max_drop")
    if isinstance(max_drop, bool):
        raise SpecError(f"{where}.max_drop", f"expected a share such as 0.5 or 50%, got {max_drop!r}")
    if max_drop is not None:
        try:
            max_drop = share(max_drop, f"{where}.max_drop")
        except ConfigError as error:
            raise named(error) from None
    document = {
        "name": _given(raw, "name", default_name),
        "contents": raw.get("contents"),
        "destination": destination,
        "prefix": _given(raw, "prefix", root),
        "on_change": _given(raw, "on_change", "signal"),
        "signal": _given(raw, "signal", "SIGHUP"),
        "max_drop": max_drop,
    }
    try:
        template = layout.parse_template(document, where)
    except layout.LayoutError as error:
        raise named(error) from None
    if not template.prefix.startswith(root):
        # The app's token reads its prefixes: one outside the app's own folder would read another app's keys.
        raise SpecError(f"{where}.prefix", f"must lie in the app's own folder {root}, got {template.prefix!r}")
    return template


def _config(raw, root: str) -> tuple:
    if raw is None or raw == []:
        return ()
    if not isinstance(raw, list):
        raise SpecError("config", f"expected a list of templates, got {_shown(raw)}")
    templates = tuple(_config_template(item, index, root) for index, item in enumerate(raw))
    try:
        return layout.check_templates(templates, "config")
    except layout.LayoutError as error:
        raise named(error) from None


def parse_spec(options) -> AppSpec:
    """An AppSpec from the module's options; raises SpecError naming the first bad option, in the options' order."""
    options = _only(options, SPEC_KEYS, "app spec")
    for required in ("name", "image"):
        if options.get(required) is None:
            raise SpecError(required, "required")
    name = parse_name_option(options["name"])
    image = parse_image(options["image"])
    instances = parse_instances(_given(options, "instances", 1))
    resources = Resources(
        cpus=parse_cpus(_given(options, "cpus", DEFAULT_CPUS)),
        mem_mib=parse_mem(_given(options, "mem", DEFAULT_MEM_MIB)),
    )
    env = _pairs(options.get("env"), "env", MAX_ENV, _env_key, _env_value)
    args = _args(options.get("args"))
    labels = _pairs(options.get("labels"), "labels", MAX_LABELS, _label_key, _label_value)
    container_port = _port(options.get("container_port"), "container_port")
    service_port = _port(options.get("service_port"), "service_port")
    hosts = _hosts(options.get("hosts"))
    health = _health(options.get("health"))
    if container_port is None:
        if health is not None and health.path is not None:
            raise SpecError("health.path", "an HTTP check needs container_port (the port it is sent to)")
        if hosts or service_port is not None:
            routed = "hosts" if hosts else "service_port"
            raise SpecError(routed, "a routed app needs container_port (the port the routers send to)")
    spec = AppSpec(
        name=name,
        image=image,
        instances=instances,
        resources=resources,
        env=env,
        args=args,
        labels=labels,
        container_port=container_port,
        service_port=service_port,
        hosts=hosts,
        health=health,
        constraints=_constraints(options.get("constraints")),
        upgrade=_upgrade(options.get("upgrade")),
        stop_grace_period_ms=milliseconds(_given(options, "stop_grace_period", "10s"), "stop_grace_period"),
        registry_auth=_registry_auth(options.get("registry_auth")),
        restart=parse_restart(_given(options, "restart", 0)),
    )
    environment = _environment(options.get("environment"))
    root = _config_kv_prefix(_given(options, "config_kv_prefix", DEFAULT_CONFIG_KV_PREFIX))
    spec = dataclasses.replace(spec, environment=environment, config_kv_prefix=root)
    spec = dataclasses.replace(spec, config=_config(options.get("config"), spec.config_root))
    size = len(json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":")))
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            "app spec", f"{size} bytes of JSON, more than {MAX_SPEC_BYTES}: move large values to configuration"
        )
    return spec
