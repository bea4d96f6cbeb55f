# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Swarm side of the app module: one Swarm service per app version.

service_spec() is pure: the parameters of the Swarm service that runs one
version of an app, from its AppSpec. SwarmClient reads an app's version
services back, creates, scales and removes them, and lists the Swarm's nodes
(check mode's plan names where instances may start).

A version's service is never updated in place: its task template is fixed
when it is created, because a change of anything a container is made from is
a new version, hence a new service, rolled to by the deployer. Scaling changes
the replica count and nothing else. So the services carry no update_config:
Swarm's rolling update never runs (it could not wait for the routers, nor drain).

Only Docker SDK calls that both Debian's python3-docker (5.0.3, what Swarm
managers run) and current releases (7.x) have: the low-level APIClient's
create_service(), inspect_service(), update_service(),
remove_service(), services(), tasks(), nodes(), info(), inspect_container() and
login(). The service parameters are the Engine API's own JSON shapes as plain
dicts, which both SDKs pass through unchanged.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

try:
    import docker
    import docker.auth
    import docker.errors

    DOCKER_IMPORT_ERROR = None
except ImportError as _error:  # pragma: no cover - managers install python3-docker
    docker = None
    DOCKER_IMPORT_ERROR = _error

from ..appconfig import layout
from ..registrator.drain import DEFAULT_STOP_SIGNAL, DRAIN_TIMEOUT_LABEL, STOP_SIGNAL_LABEL
from ..registrator.instances import APP_LABEL, PORT_LABEL, VERSION_LABEL
from ..registrator.readiness import HTTP_CHECK_LABEL, HttpCheck
from .spec import AppSpec, Health, SpecError, duration_text, parse_spec

# The service label holding the spec the version was created from (AppSpec.to_dict(), no registry_auth),
# so that what is deployed can be read back from Swarm alone.
SPEC_LABEL = "org.dockyard.spec"
# The service's stop signal: the app ignores it, the registrator starts the drain on it
# (docs/registrator.md, "Drain on stop").
DRAIN_STOP_SIGNAL = "SIGURG"
# A task that exits on its own, even with status 0, is replaced (a service runs until it is told to stop,
# so the version keeps its instance count); 5s between attempts keeps a crashing app from hammering its
# node and its registry, and is still quick to recover. A task Swarm stopped is never restarted.
RESTART_DELAY_MS = 5000
NS_PER_MS = 1_000_000
MIB = 1024 * 1024
# Swarm's answer when two writers update one service; the write is retried on the fresh version.
OUT_OF_SEQUENCE = "update out of sequence"
UPDATE_ATTEMPTS = 3


class SwarmError(Exception):
    """Docker refused or could not be asked; the message names the service (or app) and what Docker said."""

    def __init__(self, subject: str, reason: str):
        super().__init__(f"{subject}: {reason}")
        self.subject = subject
        self.reason = reason


# -- the service of a version (pure) ----------------------------------------------------
def service_name(spec: AppSpec) -> str:
    """The Swarm service that runs this version: <name>--<version id> (AppSpec.service_name, the one definition)."""
    return spec.service_name


def spec_label(spec: AppSpec) -> str:
    """The spec as the service's SPEC_LABEL holds it: to_dict() as compact JSON (registry_auth is not in it)."""
    return json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))


def container_labels(spec: AppSpec) -> dict:
    """The app's own labels, then the platform's (the registrator reads these; spec.py refuses them from users)."""
    labels = dict(spec.labels)
    labels[APP_LABEL] = spec.name
    labels[VERSION_LABEL] = spec.version_id
    if spec.container_port is not None:
        labels[PORT_LABEL] = str(spec.container_port)
    labels[DRAIN_TIMEOUT_LABEL] = duration_text(spec.upgrade.drain_timeout_ms)
    labels[STOP_SIGNAL_LABEL] = DEFAULT_STOP_SIGNAL
    check = http_check(spec)
    if check is not None:
        labels[HTTP_CHECK_LABEL] = check.label()
    return labels


def http_check(spec: AppSpec) -> HttpCheck | None:
    """The app's HTTP check as the routers' HAProxy sends it, for the registrator to pass before it registers.

    HAProxy 2.6 sends a new server requests before its first check, so the
    registrator sends the same GET first (docs/registrator.md, "Readiness
    before traffic"). The Host is the template's (roles/haproxy): the first
    host, else the app's name.
    """
    health = spec.health
    if health is None or health.path is None:
        return None
    return HttpCheck(
        path=health.path,
        expect_status=health.expect_status,
        host=spec.hosts[0] if spec.hosts else spec.name,
        interval_ms=health.interval_ms,
        timeout_ms=health.timeout_ms,
        body_contains=health.body_contains,
    )


def service_labels(spec: AppSpec) -> dict:
    return {APP_LABEL: spec.name, VERSION_LABEL: spec.version_id, SPEC_LABEL: spec_label(spec)}


def healthcheck(health: Health | None) -> dict | None:
    """Docker's HEALTHCHECK for a command check; None (the image's own, if any) for an HTTP check or none.

    An HTTP check is not Docker's to run: Docker runs a health check inside the
    container, and an app image need not hold an HTTP client (a static binary,
    a distroless image). The routers' HAProxy sends the GET of health.path to
    every instance from outside instead, and that is the readiness the deployer
    waits for: an instance serves once every router reports it UP. Docker's
    health of such a task is whatever the image declares, or none.
    A command check runs in the container, as Marathon's COMMAND checks did,
    and its failures make Docker, hence the registrator, withdraw the instance.
    """
    if health is None or health.command is None:
        return None
    return {
        "Test": ["CMD-SHELL", health.command],
        "Interval": health.interval_ms * NS_PER_MS,
        "Timeout": health.timeout_ms * NS_PER_MS,
        "StartPeriod": health.grace_period_ms * NS_PER_MS,
        "Retries": health.failures,
    }


def placement(constraints: tuple) -> dict:
    """Swarm's placement from the spec's constraints: equalities as they are written, max_per_node, spreads in order."""
    found = {
        "Constraints": [item.text for item in constraints if item.kind in ("equals", "not_equals")],
        "Preferences": [
            {"Spread": {"SpreadDescriptor": item.attribute}} for item in constraints if item.kind == "spread"
        ],
    }
    most = [item.value for item in constraints if item.kind == "max_per_node"]
    if most:
        found["MaxReplicas"] = most[0]
    return found


def resources(spec: AppSpec) -> dict:
    """Limits equal to reservations: an instance is placed only where what it asked for is free, and gets no more."""
    amounts = {"NanoCPUs": round(spec.resources.cpus * 1_000_000_000), "MemoryBytes": spec.resources.mem_mib * MIB}
    return {"Limits": dict(amounts), "Reservations": dict(amounts)}


def endpoint_spec(spec: AppSpec) -> dict | None:
    """The container port published in host mode on a port Docker picks (no IPVS, hence no ingress mesh here).

    The registrator reads the chosen port from the container and registers it;
    a fixed published port would forbid two tasks of one app on one node.
    """
    if spec.container_port is None:
        return None
    # dnsrr: no virtual IP, which would need IPVS.
    return {"Mode": "dnsrr", "Ports": [{"Protocol": "tcp", "TargetPort": spec.container_port, "PublishMode": "host"}]}


def config_mounts(spec: AppSpec) -> list:
    """The version's rendered directories and the app's token, read-only, from where every node's agent renders
    them (appconfig/layout.py): a missing source (nothing rendered yet) keeps Docker from starting the task."""
    service = service_name(spec)
    directories = sorted({template.directory for template in spec.config})
    mounts = [
        {"Type": "bind", "Source": layout.files_dir(service, index), "Target": directory, "ReadOnly": True}
        for index, directory in enumerate(directories)
    ]
    mounts.append({"Type": "bind", "Source": layout.token_dir(service), "Target": layout.TOKEN_MOUNT, "ReadOnly": True})
    return mounts


def service_spec(spec: AppSpec, replicas: int) -> dict:
    """The keyword arguments of APIClient.create_service() for this version with replicas tasks.

    No update_config (see the module's docstring) and no registry credentials:
    those travel in the create request's X-Registry-Auth header (SwarmClient.create).
    """
    container = {
        "Image": spec.image,
        "Args": list(spec.args),
        "Env": [f"{key}={value}" for key, value in spec.env],
        "Labels": container_labels(spec),
        "StopSignal": DRAIN_STOP_SIGNAL,
        # Docker's SIGKILL comes only after the drain window and the app's own grace.
        "StopGracePeriod": (spec.upgrade.drain_timeout_ms + spec.stop_grace_period_ms) * NS_PER_MS,
    }
    check = healthcheck(spec.health)
    if check is not None:
        container["Healthcheck"] = check
    if spec.config:
        container["Mounts"] = config_mounts(spec)
        container["Env"].append(f"CONSUL_HTTP_TOKEN_FILE={layout.TOKEN_MOUNT}/{layout.TOKEN_FILE}")
    parameters = {
        "name": service_name(spec),
        "labels": service_labels(spec),
        "mode": {"Replicated": {"Replicas": replicas}},
        "task_template": {
            "ContainerSpec": container,
            "Resources": resources(spec),
            "RestartPolicy": {"Condition": "any", "Delay": RESTART_DELAY_MS * NS_PER_MS, "MaxAttempts": 0},
            "Placement": placement(spec.constraints),
        },
    }
    endpoint = endpoint_spec(spec)
    if endpoint is not None:
        parameters["endpoint_spec"] = endpoint
    return parameters


# -- what is deployed -----------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """One task of a version service as Swarm reports it.

    health is Docker's health status of the task's container (starting, healthy,
    unhealthy), or None: when the container has no HEALTHCHECK, or when it is
    not on the node whose engine the client talks to. Swarm's task status does
    not carry health, and an engine can inspect only its own containers; the
    health of instances elsewhere is what their node's registrator publishes.
    """

    id: str
    slot: int | None
    node_id: str
    node: str | None
    desired_state: str
    state: str
    error: str | None
    container_id: str | None
    health: str | None


@dataclass(frozen=True)
class Node:
    """A Swarm node as placement sees it: state (ready, down...), availability (active, pause, drain), and the
    labels the node's `node.labels.*` constraints read (its Swarm labels, not its engine's)."""

    id: str
    hostname: str
    state: str
    availability: str
    labels: dict


@dataclass(frozen=True)
class VersionService:
    """A version's service: its spec as read back from SPEC_LABEL (None when the label is missing or unreadable).

    replicas is the service's own count; the spec's `instances`, `hosts` and
    `service_port` are as they were when the version was created.
    """

    name: str
    id: str
    version_id: str
    replicas: int
    spec: AppSpec | None
    tasks: tuple

    @property
    def running(self) -> tuple:
        """The tasks whose container runs now, those Swarm is stopping (draining) included."""
        return tuple(task for task in self.tasks if task.state == "running")


def read_spec_label(labels: dict) -> AppSpec | None:
    """The spec a service was created from, or None when its label is missing or no longer parses."""
    raw = labels.get(SPEC_LABEL)
    if raw is None:
        return None
    try:
        return parse_spec(json.loads(raw))
    except (ValueError, SpecError):
        return None


# -- the client -----------------------------------------------------------------------
class SwarmClient:
    """A Swarm manager's engine through the Docker SDK's low-level client; every call bounded by timeout seconds."""

    def __init__(self, base_url: str, timeout: float = 60):
        self.base_url = base_url
        self.timeout = timeout
        self._client = None

    @property
    def client(self):
        if self._client is None:
            if docker is None:
                raise SwarmError(
                    f"docker engine at {self.base_url}",
                    f"the app module needs the Docker SDK (Debian package python3-docker): {DOCKER_IMPORT_ERROR}",
                )
            with self._asking(f"docker engine at {self.base_url}", "connect"):
                self._client = docker.APIClient(base_url=self.base_url, version="auto", timeout=self.timeout)
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    @contextlib.contextmanager
    def _asking(self, subject: str, action: str):
        """Docker's refusals and unreachable engines as SwarmError naming the subject and what was asked."""
        try:
            yield
        except docker.errors.APIError as error:
            explanation = error.explanation or str(error)
            raise SwarmError(subject, f"{action}: {error.status_code} {explanation}") from None
        except (docker.errors.DockerException, OSError) as error:
            raise SwarmError(subject, f"{action}: {error}") from None

    def _inspect(self, name: str) -> dict | None:
        try:
            return self.client.inspect_service(name)
        except docker.errors.NotFound:
            return None

    def nodes(self) -> list:
        """Every node of the Swarm, sorted by hostname."""
        with self._asking(f"swarm at {self.base_url}", "list nodes"):
            raw_nodes = self.client.nodes()
        found = [
            Node(
                id=raw["ID"],
                hostname=(raw.get("Description") or {}).get("Hostname") or "",
                state=(raw.get("Status") or {}).get("State", ""),
                availability=(raw.get("Spec") or {}).get("Availability", ""),
                labels=dict((raw.get("Spec") or {}).get("Labels") or {}),
            )
            for raw in raw_nodes
        ]
        return sorted(found, key=lambda node: (node.hostname, node.id))

    def versions(self, app: str) -> list:
        """Every version service of the app, with its tasks, sorted by name."""
        subject = f"app {app}"
        with self._asking(subject, "list services"):
            services = self.client.services(filters={"label": f"{APP_LABEL}={app}"})
        if not services:
            return []
        hostnames = {node.id: node.hostname or None for node in self.nodes()}
        with self._asking(subject, "read the engine's Swarm node"):
            local_node = self.client.info()["Swarm"].get("NodeID")
        found = []
        for service in sorted(services, key=lambda item: item["Spec"]["Name"]):
            spec = service["Spec"]
            name, labels = spec["Name"], spec.get("Labels") or {}
            with self._asking(f"service {name}", "list tasks"):
                raw_tasks = self.client.tasks(filters={"service": service["ID"]})
            tasks = tuple(self._task(raw, hostnames, local_node) for raw in raw_tasks)
            found.append(
                VersionService(
                    name=name,
                    id=service["ID"],
                    version_id=labels.get(VERSION_LABEL, ""),
                    replicas=((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas", 0),
                    spec=read_spec_label(labels),
                    tasks=tuple(sorted(tasks, key=lambda task: (task.slot or 0, task.id))),
                )
            )
        return found

    def _task(self, raw: dict, hostnames: dict, local_node: str | None) -> Task:
        status = raw.get("Status") or {}
        container_id = (status.get("ContainerStatus") or {}).get("ContainerID") or None
        node_id = raw.get("NodeID", "")
        health = None
        if container_id and node_id == local_node:
            health = self._health(container_id)
        return Task(
            id=raw["ID"],
            slot=raw.get("Slot"),
            node_id=node_id,
            node=hostnames.get(node_id),
            desired_state=raw.get("DesiredState", ""),
            state=status.get("State", ""),
            error=status.get("Err") or None,
            container_id=container_id,
            health=health,
        )

    def _health(self, container_id: str) -> str | None:
        try:
            attrs = self.client.inspect_container(container_id)
        except docker.errors.NotFound:  # removed since Swarm listed the task
            return None
        except (docker.errors.DockerException, OSError) as error:
            raise SwarmError(f"container {container_id[:12]}", f"inspect: {error}") from None
        health = (attrs.get("State") or {}).get("Health")
        return health.get("Status") if health else None

    def create(self, spec: AppSpec, replicas: int) -> bool:
        """Creates the version's service; False (nothing changed) when it already runs this version.

        A service of the same name runs the same version unless its spec label
        was edited by hand (the name holds the version id, a digest of what the
        containers are made from): then the label is not trusted and this fails.
        Its replica count is left as it is; scale() changes it.
        """
        name = service_name(spec)
        subject = f"service {name}"
        with self._asking(subject, "inspect"):
            existing = self._inspect(name)
        if existing is not None:
            deployed = read_spec_label(existing["Spec"].get("Labels") or {})
            if deployed is None or deployed.version_id != spec.version_id:
                raise SwarmError(
                    subject,
                    f"exists, but its label {SPEC_LABEL} does not describe version {spec.version_id}"
                    " (edited by hand?): remove the service or restore the label",
                )
            return False
        if spec.registry_auth is not None:
            self._log_in(spec, subject)
        with self._asking(subject, "create"):
            self.client.create_service(**service_spec(spec, replicas))
        return True

    def _log_in(self, spec: AppSpec, subject: str) -> None:
        """Lets the SDK send the credentials as create_service's X-Registry-Auth header, as `docker login` does.

        login() has the engine check them with the registry first, so bad
        credentials fail here rather than as tasks that cannot pull. The
        manager keeps them with the service for later pulls; they are never in
        a returned value, a label or a message.
        """
        registry, _repository = docker.auth.resolve_repository_name(spec.image)
        auth = spec.registry_auth
        with self._asking(subject, f"log in to the registry {registry} as {auth.username}"):
            self.client.login(auth.username, password=auth.password, registry=registry, reauth=True)

    def scale(self, service: str, replicas: int) -> bool:
        """Sets the service's replica count; False when it already has it. Only the count changes, no task restarts."""
        subject = f"service {service}"
        attempt = 1
        while True:
            with self._asking(subject, "inspect"):
                current = self.client.inspect_service(service)
            mode = current["Spec"].get("Mode") or {}
            if "Replicated" not in mode:
                raise SwarmError(subject, "is not a replicated service")
            if mode["Replicated"].get("Replicas") == replicas:
                return False
            try:
                with self._asking(subject, f"scale to {replicas}"):
                    self._update(current, mode={"Replicated": {"Replicas": replicas}})
                return True
            except SwarmError as error:
                if OUT_OF_SEQUENCE not in error.reason or attempt >= UPDATE_ATTEMPTS:
                    raise
            attempt += 1

    def _update(self, current: dict, **changes) -> None:
        """Writes the service's stored spec back with changes, every other part as it is.

        Not update_service(fetch_current_spec=True): that reads the spec with
        the engine's defaults filled in, and writing those back changes the task
        template in Swarm's eyes, which replaces every task.
        """
        spec = current["Spec"]
        stored = {
            "task_template": spec["TaskTemplate"],
            "name": spec["Name"],
            "labels": spec.get("Labels") or {},
            "mode": spec.get("Mode"),
            "update_config": spec.get("UpdateConfig"),
            "rollback_config": spec.get("RollbackConfig"),
            "endpoint_spec": spec.get("EndpointSpec"),
        }
        self.client.update_service(current["ID"], current["Version"]["Index"], **{**stored, **changes})

    def remove(self, service: str) -> bool:
        """Removes the service (Swarm stops its tasks with its stop signal: a drain); False when it is gone already."""
        with self._asking(f"service {service}", "remove"):
            try:
                self.client.remove_service(service)
            except docker.errors.NotFound:
                return False
        return True
