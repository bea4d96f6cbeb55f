# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Marathon app definition translated to the app spec's options.

Each Marathon field is translated to its equivalent, or named as having none.
With strict (the default) a field with no equivalent fails the translation
before anything changes; without it the field is left out and named in the
result. A field that holds Marathon's default or nothing (disk 0, ports [],
backoffFactor 1.15...) asks for no behaviour and is taken silently, and so is
the state Marathon adds when it reports an app (version, tasks...).

Where Marathon's meaning and the platform's differ a little, the translation
says so in `notes` (Marathon counts any status 200-399 as healthy; the spec
expects one status). Bad values fail naming the Marathon field
(`marathon_app.constraints[2]: ...`).

Constraints become what Docker Swarm can do: placement constraints
(node.labels.X==Y / !=, node.hostname), a maximum of tasks per node, and
spread preferences. Swarm constraints take no regular expressions, so LIKE
and UNLIKE translate only when their expression is a literal (or, for UNLIKE,
literals joined by |: each becomes a !=; Swarm ANDs constraints, so a LIKE
alternation cannot be said).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .spec import AppSpec, SpecError, _shown, parse_spec

ROOT = "marathon_app"
MAX_DEFINITION_BYTES = 256 * 1024

# Marathon's health check defaults (seconds, failures), for a check that leaves them out.
MARATHON_HEALTH_DEFAULTS = {
    "gracePeriodSeconds": 300,
    "intervalSeconds": 60,
    "timeoutSeconds": 20,
    "maxConsecutiveFailures": 3,
}
# Fields that ask for nothing when they hold these values (Marathon's defaults).
_INERT_DEFAULTS = {
    "disk": (0,),
    "gpus": (0,),
    "executor": ("",),
    "backoffSeconds": (1,),
    "backoffFactor": (1.15,),
    "maxLaunchDelaySeconds": (3600,),
    "requirePorts": (False,),
    "killSelection": ("YOUNGEST_FIRST",),
    "acceptedResourceRoles": (["*"],),
}
# What Marathon adds when it reports an app: state, not definition.
_STATE_FIELDS = (
    "version",
    "versionInfo",
    "tasksStaged",
    "tasksRunning",
    "tasksHealthy",
    "tasksUnhealthy",
    "deployments",
    "tasks",
    "lastTaskFailure",
    "taskStats",
    "readinessCheckResults",
)
_TRANSLATED = (
    "id",
    "instances",
    "cpus",
    "mem",
    "env",
    "args",
    "labels",
    "container",
    "healthChecks",
    "upgradeStrategy",
    "constraints",
    "taskKillGracePeriodSeconds",
)
# marathon-lb's label for an app's virtual hosts (its first port's), comma-separated.
VHOST_LABEL = "HAPROXY_0_VHOST"
_HTTP_PROTOCOLS = ("HTTP", "MESOS_HTTP")
_HEALTH_KEYS = (
    "protocol",
    "path",
    "portIndex",
    "command",
    "ignoreHttp1xx",
    *MARATHON_HEALTH_DEFAULTS,
)
# A regular expression that is a literal, or literals joined by |: letters, digits, '_', '-' and escaped dots.
_LITERAL = r"(?:[A-Za-z0-9_-]|\\\.)+"
_LITERALS = re.compile(rf"{_LITERAL}(?:\|{_LITERAL})*")


@dataclass(frozen=True)
class Translation:
    """The spec a definition gives, the fields it has no equivalent for, and where meanings differ."""

    spec: AppSpec
    unsupported: tuple  # "marathon_app.<field>: why", one per field left out
    notes: tuple


class _Translator:
    """Walks one definition, collecting options, the Marathon field each came from, and what it cannot say."""

    def __init__(self):
        self.options = {}
        self.origins = {}  # option path -> Marathon field path
        self.unsupported = []
        self.notes = []

    def put(self, option: str, value, origin: str) -> None:
        self.options[option] = value
        self.origins[option] = origin

    def cannot(self, where: str, why: str) -> None:
        self.unsupported.append(f"{ROOT}.{where}: {why}")

    def bad(self, where: str, reason: str) -> SpecError:
        return SpecError(f"{ROOT}.{where}", reason)


def _decode(definition) -> dict:
    if isinstance(definition, (bytes, bytearray)):
        try:
            definition = definition.decode("utf-8")
        except UnicodeDecodeError:
            raise SpecError(ROOT, "not UTF-8") from None
    if isinstance(definition, str):
        if len(definition.encode("utf-8")) > MAX_DEFINITION_BYTES:
            raise SpecError(ROOT, f"more than {MAX_DEFINITION_BYTES} bytes")
        try:
            definition = json.loads(definition)
        except ValueError as error:
            raise SpecError(ROOT, f"invalid JSON: {error}") from None
    if not isinstance(definition, dict):
        raise SpecError(ROOT, f"expected a Marathon app definition (a JSON object), got {type(definition).__name__}")
    return definition


def _empty(value) -> bool:
    return value is None or value == [] or value == {} or value is False


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seconds(work: _Translator, raw: dict, key: str, where: str, default: int) -> str:
    value = raw.get(key, default)
    if not _integer(value) or value < 0:
        raise work.bad(f"{where}.{key}", f"expected whole seconds, got {_shown(value)}")
    return f"{value}s"


def _name(work: _Translator, definition: dict) -> None:
    app_id = definition.get("id")
    if not isinstance(app_id, str) or not app_id.strip("/"):
        raise work.bad("id", f"required: the app's id such as /shop, got {_shown(app_id)}")
    *groups, name = app_id.strip("/").split("/")
    if groups:
        work.cannot("id", f"groups ({'/'.join(groups)}) have no equivalent; the app is named {name}")
    work.put("name", name, "id")


def _scalars(work: _Translator, definition: dict) -> None:
    for key in ("instances", "cpus", "mem", "args"):
        if key in definition:
            work.put(key, definition[key], key)
    grace = definition.get("taskKillGracePeriodSeconds")
    if grace is not None:
        if not _integer(grace) or grace < 0:
            raise work.bad("taskKillGracePeriodSeconds", f"expected whole seconds, got {_shown(grace)}")
        work.put("stop_grace_period", f"{grace}s", "taskKillGracePeriodSeconds")


def _env(work: _Translator, definition: dict) -> None:
    env = definition.get("env")
    if env is None:
        return
    if not isinstance(env, dict):
        raise work.bad("env", f"expected an object, got {type(env).__name__}")
    plain = {}
    for key, value in env.items():
        if isinstance(value, dict):
            work.cannot(f"env.{key}", "secret references have no equivalent")
        else:
            plain[key] = value
    work.put("env", plain, "env")


def _labels(work: _Translator, definition: dict) -> None:
    labels = definition.get("labels")
    if labels is None:
        return
    if not isinstance(labels, dict):
        raise work.bad("labels", f"expected an object, got {type(labels).__name__}")
    labels = dict(labels)
    vhosts = labels.pop(VHOST_LABEL, None)
    if vhosts is not None:
        if not isinstance(vhosts, str):
            raise work.bad(f"labels.{VHOST_LABEL}", f"expected comma-separated host names, got {_shown(vhosts)}")
        work.put("hosts", [host.strip() for host in vhosts.split(",") if host.strip()], f"labels.{VHOST_LABEL}")
    work.put("labels", labels, "labels")


def _docker(work: _Translator, container) -> None:
    if not isinstance(container, dict):
        raise work.bad("container", "required: an object with docker.image")
    kind = container.get("type", "DOCKER")
    if kind not in ("DOCKER", "MESOS"):
        raise work.bad("container.type", f"expected DOCKER or MESOS, got {_shown(kind)}")
    docker = container.get("docker")
    if not isinstance(docker, dict) or "image" not in docker:
        raise work.bad("container.docker.image", "required: the image to run")
    work.put("image", docker["image"], "container.docker.image")
    if kind == "MESOS":
        work.notes.append(f"{ROOT}.container.type: MESOS; Docker runs the image here")
    for key, value in docker.items():
        where = f"container.docker.{key}"
        if key in ("image", "portMappings"):
            continue
        if key == "network":
            if value != "BRIDGE":
                work.cannot(where, f"{value} networking has no equivalent; tasks run on the bridge network")
        elif key == "forcePullImage":
            if value:
                work.notes.append(f"{ROOT}.{where}: Swarm pulls the pinned image when a node lacks it")
        elif not _empty(value):
            work.cannot(where, "has no equivalent")
    for key, value in container.items():
        if key not in ("type", "docker", "portMappings") and not _empty(value):
            work.cannot(f"container.{key}", "has no equivalent")
    if "portMappings" in container and "portMappings" in docker:
        raise work.bad("container.portMappings", "given both here and under container.docker")
    if "portMappings" in container:
        _port_mappings(work, container["portMappings"], "container.portMappings")
    elif "portMappings" in docker:
        _port_mappings(work, docker["portMappings"], "container.docker.portMappings")


def _port_mappings(work: _Translator, mappings, where: str) -> None:
    if mappings is None or mappings == []:
        return
    if not isinstance(mappings, list) or not all(isinstance(mapping, dict) for mapping in mappings):
        raise work.bad(where, "expected a list of objects")
    for index in range(1, len(mappings)):
        work.cannot(f"{where}[{index}]", "an app has one port here; only the first mapping is translated")
    mapping, where = mappings[0], f"{where}[0]"
    work.put("container_port", mapping.get("containerPort"), f"{where}.containerPort")
    service_port = mapping.get("servicePort", 0)
    if service_port != 0:
        work.put("service_port", service_port, f"{where}.servicePort")
    for key, value in mapping.items():
        if key in ("containerPort", "servicePort"):
            continue
        if key == "hostPort":
            if value != 0:
                work.cannot(f"{where}.hostPort", "fixed host ports have no equivalent; Swarm picks the published port")
        elif key == "protocol":
            if value != "tcp":
                work.cannot(f"{where}.protocol", f"{value} has no equivalent; the routers carry tcp")
        elif key == "name":
            work.notes.append(f"{ROOT}.{where}.name: port names are not kept")
        elif not _empty(value):
            work.cannot(f"{where}.{key}", "has no equivalent")


def _health(work: _Translator, checks) -> None:
    if checks is None or checks == []:
        return
    if not isinstance(checks, list) or not all(isinstance(check, dict) for check in checks):
        raise work.bad("healthChecks", "expected a list of objects")
    for index in range(1, len(checks)):
        work.cannot(f"healthChecks[{index}]", "an app has one health check here; only the first is translated")
    check, where = checks[0], "healthChecks[0]"
    protocol = check.get("protocol", "HTTP")
    for key in sorted(set(check) - set(_HEALTH_KEYS)):
        if not _empty(check[key]):
            work.cannot(f"{where}.{key}", "has no equivalent")
    if protocol in _HTTP_PROTOCOLS:
        health = {"path": check.get("path") or "/"}
        work.origins["health.path"] = f"{where}.path"
        if check.get("portIndex", 0) != 0:
            work.cannot(f"{where}.portIndex", "the check goes to the app's one port")
        if check.get("ignoreHttp1xx"):
            work.cannot(f"{where}.ignoreHttp1xx", "has no equivalent")
        work.notes.append(f"{ROOT}.{where}: Marathon counts any status 200-399 as healthy; the spec expects 200")
    elif protocol == "COMMAND":
        command = check.get("command")
        if not isinstance(command, dict) or not isinstance(command.get("value"), str):
            raise work.bad(f"{where}.command", "expected an object with value, the shell command")
        health = {"command": command["value"]}
        work.origins["health.command"] = f"{where}.command.value"
        work.notes.append(f"{ROOT}.{where}.command: Docker runs it in the container, without Marathon's $HOST/$PORT0")
    else:
        work.cannot(f"{where}.protocol", f"{protocol} checks have no equivalent (HTTP or COMMAND)")
        return
    failures = check.get("maxConsecutiveFailures", MARATHON_HEALTH_DEFAULTS["maxConsecutiveFailures"])
    if failures == 0:
        work.cannot(f"{where}.maxConsecutiveFailures", "0 (never replace an unhealthy task) has no equivalent")
        failures = MARATHON_HEALTH_DEFAULTS["maxConsecutiveFailures"]
    health["failures"] = failures
    work.origins["health.failures"] = f"{where}.maxConsecutiveFailures"
    for option, key in (("grace_period", "gracePeriodSeconds"), ("interval", "intervalSeconds")):
        health[option] = _seconds(work, check, key, where, MARATHON_HEALTH_DEFAULTS[key])
        work.origins[f"health.{option}"] = f"{where}.{key}"
    health["timeout"] = _seconds(work, check, "timeoutSeconds", where, MARATHON_HEALTH_DEFAULTS["timeoutSeconds"])
    work.origins["health.timeout"] = f"{where}.timeoutSeconds"
    work.put("health", health, where)


def _upgrade(work: _Translator, strategy) -> None:
    if strategy is None:
        return
    if not isinstance(strategy, dict):
        raise work.bad("upgradeStrategy", "expected an object")
    upgrade = {}
    for key, option in (
        ("minimumHealthCapacity", "minimum_health_capacity"),
        ("maximumOverCapacity", "maximum_over_capacity"),
    ):
        if key in strategy:
            upgrade[option] = strategy[key]
            work.origins[f"upgrade.{option}"] = f"upgradeStrategy.{key}"
    for key in sorted(set(strategy) - {"minimumHealthCapacity", "maximumOverCapacity"}):
        work.cannot(f"upgradeStrategy.{key}", "has no equivalent")
    work.put("upgrade", upgrade, "upgradeStrategy")


def _literals(expression: str) -> list | None:
    """The literal strings a regular expression is an alternation of, or None when it is more than that."""
    core = expression[1:] if expression.startswith("^") else expression
    core = core[:-1] if core.endswith("$") and not core.endswith("\\$") else core
    if core.startswith("(") and core.endswith(")"):
        core = core[1:-1]
    if not _LITERALS.fullmatch(core):
        return None
    return [literal.replace("\\.", ".") for literal in core.split("|")]


def _constraint(work: _Translator, raw, where: str) -> list:
    """The spec's constraints for one Marathon constraint (none when it is named unsupported)."""
    if not isinstance(raw, list) or not 2 <= len(raw) <= 3 or not all(isinstance(part, str) for part in raw):
        raise work.bad(where, f"expected [field, operator] or [field, operator, value], got {_shown(raw)}")
    field_name, operator, value = raw[0], raw[1], raw[2] if len(raw) == 3 else None
    on_host = field_name in ("hostname", "@hostname")
    if field_name.startswith("@") and not on_host:
        work.cannot(where, f"{field_name} (a Mesos fault domain) has no equivalent")
        return []
    attribute = "node.hostname" if on_host else f"node.labels.{field_name}"
    if operator in ("CLUSTER", "IS"):
        if value is None or value == "":
            work.cannot(where, f"{operator} without a value (all tasks together, anywhere) has no equivalent")
            return []
        return [f"{attribute}=={value}"]
    if operator in ("LIKE", "UNLIKE"):
        literals = _literals(value) if value else None
        if literals is None or (operator == "LIKE" and len(literals) > 1):
            work.cannot(where, f"{operator} {_shown(value)}: Swarm constraints take no regular expressions")
            return []
        return [f"{attribute}{'==' if operator == 'LIKE' else '!='}{literal}" for literal in literals]
    if operator in ("UNIQUE", "MAX_PER"):
        if not on_host:
            work.cannot(where, f"{operator} on a node attribute has no equivalent; Swarm limits tasks per node only")
            return []
        if operator == "UNIQUE":
            return ["max_per_node=1"]
        if value is None or not re.fullmatch(r"[0-9]{1,6}", value):
            raise work.bad(where, f"MAX_PER needs a whole number, got {_shown(value)}")
        return [f"max_per_node={int(value)}"]
    if operator == "GROUP_BY":
        if value is not None:
            work.notes.append(f"{ROOT}.{where}: Swarm spreads over every value it sees; the count {value} is not used")
        if on_host:
            work.notes.append(f"{ROOT}.{where}: Swarm spreads a service's tasks over nodes by itself")
            return []
        return [f"spread={attribute}"]
    raise work.bad(where, f"unknown operator {_shown(operator)}")


def _constraints(work: _Translator, constraints) -> None:
    if constraints is None or constraints == []:
        return
    if not isinstance(constraints, list):
        raise work.bad("constraints", "expected a list of [field, operator, value]")
    translated, most = [], None
    for index, raw in enumerate(constraints):
        for text in _constraint(work, raw, f"constraints[{index}]"):
            if text.startswith("max_per_node="):
                # UNIQUE and MAX_PER on hostname both hold: the smaller maximum says both.
                count = int(text.split("=")[1])
                most = (count, index) if most is None or count < most[0] else most
                continue
            work.origins[f"constraints[{len(translated)}]"] = f"constraints[{index}]"
            translated.append(text)
    if most is not None:
        work.origins[f"constraints[{len(translated)}]"] = f"constraints[{most[1]}]"
        translated.append(f"max_per_node={most[0]}")
    work.put("constraints", translated, "constraints")


def _leftovers(work: _Translator, definition: dict) -> None:
    for key in sorted(set(definition) - set(_TRANSLATED) - set(_STATE_FIELDS)):
        value = definition[key]
        if _empty(value) or value in _INERT_DEFAULTS.get(key, ()):
            continue
        work.cannot(key, "has no equivalent")


def _origin(work: _Translator, option: str) -> str:
    """The Marathon field an option came from: that of its nearest translated prefix, with the rest of its path."""
    path = option
    while path not in work.origins:
        shorter = re.sub(r"(?:\.[^.\[\]]*|\[[0-9]+\])$", "", path)
        if shorter == path:
            return option
        path = shorter
    return work.origins[path] + option[len(path) :]


def _merged(work: _Translator, options: dict) -> dict:
    """The translated options with the module's own beside them; nested dicts (upgrade) merge key by key."""
    merged = dict(work.options)
    for key, value in options.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = {name: given for name, given in value.items() if given is not None}
            clashes = sorted(set(value) & set(merged[key]))
            if clashes:
                raise SpecError(f"{key}.{clashes[0]}", f"given both as an option and by {ROOT}.{work.origins[key]}")
            merged[key] = {**merged[key], **value}
        elif key in merged:
            raise SpecError(key, f"given both as an option and by {ROOT}.{work.origins[key]}")
        else:
            merged[key] = value
    return merged


def translate(definition, strict: bool = True, options: dict | None = None) -> Translation:
    """The spec a Marathon app definition (JSON text or a decoded dict) gives; raises SpecError.

    options are the module's other options (registry_auth, hosts, upgrade...),
    set beside the definition; one that the definition also sets is an error.
    """
    definition = _decode(definition)
    work = _Translator()
    _name(work, definition)
    _scalars(work, definition)
    _env(work, definition)
    _labels(work, definition)
    _docker(work, definition.get("container"))
    _health(work, definition.get("healthChecks"))
    _upgrade(work, definition.get("upgradeStrategy"))
    _constraints(work, definition.get("constraints"))
    _leftovers(work, definition)
    if strict and work.unsupported:
        raise SpecError(
            ROOT,
            "fields with no equivalent (marathon_strict is on; nothing was changed): " + "; ".join(work.unsupported),
        )
    merged = _merged(work, options or {})
    try:
        spec = parse_spec(merged)
    except SpecError as error:
        if re.split(r"[.\[]", error.field)[0] in (options or {}):
            raise
        raise SpecError(f"{ROOT}.{_origin(work, error.field)}", error.reason) from None
    return Translation(spec=spec, unsupported=tuple(work.unsupported), notes=tuple(work.notes))
