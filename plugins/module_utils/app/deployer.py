# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deployer: plans and steps an app's deployment on the Swarm, waiting for the outcome, rolling back on failure.

It composes the parts beside it: the spec and its diff (spec.py), the rollout
arithmetic (rollout.py), one Swarm service per version (swarm.py), the lock
and ledger in ZooKeeper (ledger.py), the instances the registrator keeps in
Consul and the app's route (daemon/routing.py, _route.py), and, when asked,
the routers' reports (router/report.py).

Every change is a convergence towards one target version with a number of
instances: a first deployment, a scale, a roll to a new version and a
rollback all run the same loop. After every wait the loop reads the fleet as
it really is (Swarm's tasks, the registrator's keys, the routers' reports),
asks rollout.next_actions() what to do, checks the lock, and does it.

The decisions (which tasks serve, the fleet, what is a failure, which
services to drain, which ledger entry a rollback restores, the route to
write) are pure functions of plain data, so tests drive them without Swarm,
Consul or ZooKeeper; the Deployer class does the reading and writing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .._route import entries as route_entries
from .._route import plan as route_plan
from ..appconfig import layout
from ..daemon.consul import ConsulError, kv_path
from ..daemon.routing import RouteError, parse_instance, route_key
from ..renderer.routes import backend_name
from ..router.report import read_routers, waiting_for
from . import rollout
from .ledger import DEFAULT_MAX_ENTRIES, DeploymentLock, Holder, Ledger, LedgerError, current_user, new_deployment_id
from .spec import AppSpec, SpecError, parse_restart, parse_spec
from .swarm import SwarmClient, SwarmError

# How often the loop reads the fleet again while it waits.
DEFAULT_POLL_SECONDS = 0.5
# Added to a health check's own bound (grace period + failures x interval) before a started instance that is
# still not ready counts as failed: the time to pull an image, for Swarm to place the task and for the
# registrator (and the routers) to see it healthy.
DEFAULT_MARGIN_SECONDS = 30.0
# Failed, rejected or unhealthy tasks of the version being started before the roll stops: Swarm replaces such
# a task every 5 s (swarm.RESTART_DELAY_MS), so waiting for more only delays the rollback.
DEFAULT_TASK_FAILURES = 3
DEFAULT_DEADLINE_SECONDS = 1800.0
FAILED_TASK_STATES = ("failed", "rejected")
# How long every eligible node's agent has to render a new version's configuration (a Consul round trip and a
# render each; it takes longer only when a node is down or a template fails, and then the deployment should stop).
DEFAULT_CONFIG_WAIT_SECONDS = 60.0
# How long every node still missing may report errors before the deployment stops waiting for it.
CONFIG_ERROR_GRACE_SECONDS = 5.0
NOT_READY_HEALTH = ("starting", "unhealthy")


class DeployError(Exception):
    """A deployment that failed; the message says what failed and what state the app is left in."""

    def __init__(self, message: str, deployment: str | None = None, steps: tuple = ()):
        super().__init__(message)
        self.deployment = deployment
        self.steps = steps


class _RollFailed(Exception):
    """A convergence that cannot succeed (the reason is the message): the deployer rolls back."""


# -- pure decisions -----------------------------------------------------------------------
def registered_instances(kv: dict, prefix: str, app: str) -> dict:
    """{task id: routing.Instance} of the app, from a recurse read of <prefix>instances/ ({key: (value, session)}).

    The key's last part is the Swarm task id (the registrator's layout), so a
    task is matched to its instance whatever the node is called in Consul.
    Keys the routers would refuse are left out: they serve nothing.
    """
    base = f"{prefix}instances/"
    found = {}
    for key, (value, _session) in kv.items():
        if not key.startswith(base):
            continue
        try:
            instance = parse_instance(key[len(base) :], value)
        except RouteError:
            continue
        if instance.app == app:
            found[instance.task] = instance
    return found


def task_ready(task, registered: dict, needs_registration: bool, unrouted: frozenset = frozenset()) -> bool:
    """A task that serves: running and meant to, not starting or unhealthy by Docker, in Consul, UP on the routers.

    Docker's health is known only for the manager's own containers; elsewhere
    the registrator stands for it (it registers a container with a health
    check only while it is healthy). An app without a container port is never
    registered, so running and healthy is all it can be.
    """
    if task.state != "running" or task.desired_state != "running" or task.health in NOT_READY_HEALTH:
        return False
    if needs_registration and task.id not in registered:
        return False
    return task.id not in unrouted


def ready_counts(versions: list, ready_ids: frozenset) -> dict:
    """{version id: tasks that serve} for every version service."""
    return {version.version_id: sum(task.id in ready_ids for task in version.tasks) for version in versions}


def fleet_of(versions: list, target: str, ready_ids: frozenset) -> rollout.Fleet:
    """The fleet rollout.next_actions() reads: serving tasks of other versions, and the target's serving and asked-for.

    The target's starting count is what its service asks for beyond what
    serves (tasks Swarm has not placed yet included), so a task that died is
    still waited for while Swarm replaces it.
    """
    counts = ready_counts(versions, ready_ids)
    new = next((version for version in versions if version.version_id == target), None)
    healthy = counts.get(target, 0)
    return rollout.Fleet(
        old=sum(count for version_id, count in counts.items() if version_id != target),
        new_healthy=healthy,
        new_starting=max(0, (new.replicas if new else 0) - healthy),
    )


def old_drains(versions: list, target: str, ready_ids: frozenset, count: int) -> list:
    """[(service, replicas)]: the old versions to scale down to drain count serving instances.

    A version's count is set to what serves of it, less what it gives up, so
    tasks that do not serve go first; versions serving least go first, so that
    leftovers of an interrupted roll disappear before the current version shrinks.
    """
    counts = ready_counts(versions, ready_ids)
    old = sorted(
        (version for version in versions if version.version_id != target), key=lambda v: (counts[v.version_id], v.name)
    )
    drains = []
    for version in old:
        if count <= 0:
            break
        taken = min(count, counts[version.version_id])
        if taken:
            drains.append((version.name, counts[version.version_id] - taken))
            count -= taken
    return drains


def still_registered(registered: dict, versions: list, target: str) -> frozenset:
    """Registered tasks that are not the target's tasks meant to run: drained or removed, not yet withdrawn."""
    keep = {
        task.id
        for version in versions
        if version.version_id == target
        for task in version.tasks
        if task.desired_state == "running"
    }
    return frozenset(set(registered) - keep)


def readiness_seconds(spec: AppSpec, margin: float) -> float:
    """How long a started instance may take to serve: the health check's own bound plus the margin."""
    health = spec.health
    if health is None:
        return margin
    return (health.grace_period_ms + health.failures * health.interval_ms) / 1000 + margin


def task_failures(tasks, baseline: frozenset) -> list:
    """The tasks of this deployment (not in baseline) that failed, were rejected or are unhealthy."""
    return [
        task
        for task in tasks
        if task.id not in baseline and (task.state in FAILED_TASK_STATES or task.health == "unhealthy")
    ]


def failure_reason(
    fleet: rollout.Fleet,
    failed_tasks: list,
    waited: float,
    readiness: float,
    task_failure_limit: int,
    version: str,
) -> str | None:
    """Why the convergence towards version cannot succeed, or None while it may.

    waited is how long the loop has waited since the target last started an
    instance or gained a serving one.
    """
    if len(failed_tasks) >= task_failure_limit:
        errors = sorted({task.error or f"Docker health {task.health}" for task in failed_tasks})
        return f"{len(failed_tasks)} task(s) of version {version} failed: {'; '.join(errors)}"
    if fleet.new_starting and waited > readiness:
        errors = sorted({task.error for task in failed_tasks if task.error})
        seen = f" (task errors: {'; '.join(errors)})" if errors else ""
        return (
            f"{fleet.new_starting} instance(s) of version {version} not serving within {readiness:g}s"
            f" (health check grace, failures x interval, and a margin){seen}"
        )
    return None


def deployed_spec(versions: list, last_spec: AppSpec | None) -> AppSpec | None:
    """The spec deployed now, with the instance count Swarm runs; None when nothing runs.

    The live version is the last successful deployment's when its service still
    asks for instances, else the version asking for most. Its spec comes from
    the ledger when it is that deployment's (hosts and instances as last
    deployed), else from the service's label.
    """
    live = [version for version in versions if version.replicas > 0]
    if not live:
        return None
    current = next((version for version in live if last_spec and version.version_id == last_spec.version_id), None)
    if current is None:
        current = max(live, key=lambda version: (version.replicas, version.name))
    base = last_spec if last_spec and last_spec.version_id == current.version_id else current.spec
    if base is None:
        return None
    return dataclasses.replace(base, instances=current.replicas)


def wanted_spec(spec: AppSpec, state: str, versions: list, last_spec: AppSpec | None) -> AppSpec:
    """The spec a deployment converges to: spec with the restart generation the app's state asks for.

    present keeps the generation deployed, so the same options after a
    restart change nothing; restarted takes the next one, a new version, so
    the ordinary roll replaces every container, drained, with its rollback on
    failure. An app with no version service is deployed at generation 0,
    restarted or not: all its containers are fresh anyway. One scaled to no
    instance keeps the generation of its ledger spec, whose service is there.
    """
    current = deployed_spec(versions, last_spec)
    if current is None and last_spec and any(version.version_id == last_spec.version_id for version in versions):
        current = last_spec
    if current is None:
        return dataclasses.replace(spec, restart=0)
    generation = current.restart + 1 if state == "restarted" else current.restart
    return dataclasses.replace(spec, restart=parse_restart(generation))


def rollback_entry(history: list, live_version: str | None, reference: str | None = None):
    """The ledger entry a rollback restores, or None.

    reference None (rollback: true): the newest succeeded deployment of a
    version other than the live one, that is the version before the current.
    reference given (rollback_to): the deployment with that id, whatever its
    outcome, else the newest succeeded deployment of that version id.
    """
    if reference is None:
        return next(
            (entry for entry in history if entry.outcome == "succeeded" and entry.version != live_version), None
        )
    by_id = next((entry for entry in history if entry.deployment == reference), None)
    return by_id or next(
        (entry for entry in history if entry.version == reference and entry.outcome == "succeeded"), None
    )


def route_document(spec: AppSpec, stored: dict | None) -> dict | None:
    """The app's route as the spec asks for it: hosts, service_port, the HTTP check; None when it wants no route.

    What else the stored route says (balance, sticky, a canary weight, an
    idempotency header: the route module's options) is kept as it is.
    """
    if not spec.hosts and spec.service_port is None:
        return None
    document = {key: value for key, value in (stored or {}).items() if key not in ("hosts", "service_port", "health")}
    if spec.hosts:
        document["hosts"] = list(spec.hosts)
    if spec.service_port is not None:
        document["service_port"] = spec.service_port
    health = spec.health
    if health is not None and health.path is not None:
        document["health"] = {
            "path": health.path,
            "expect_status": health.expect_status,
            "interval": f"{health.interval_ms}ms",
        }
        if health.body_contains is not None:
            document["health"]["body_contains"] = health.body_contains
    return document


def config_problem(node: str, status) -> str:
    """Why a node has not rendered a version's configuration, for an error message."""
    if status is None:
        return f"{node} (no report from its agent)"
    if status.errors:
        return "{} ({})".format(node, "; ".join(f"{name}: {message}" for name, message in status.errors))
    return f"{node} (not every file rendered yet)"


def running_nodes(version) -> list:
    """The nodes that run the version's instances now, sorted: a drain stops some of them, and Swarm picks which."""
    running = (task for task in version.tasks if task.state == "running" and task.desired_state == "running")
    return sorted({task.node or task.node_id for task in running})


def eligible_nodes(nodes: list, spec: AppSpec, version=None) -> list:
    """The nodes Swarm may start an instance of spec's version on, sorted (version: its service, if it exists).

    Those ready and active that meet every equality and inequality
    constraint, less those that already run max_per_node of the version's
    tasks (Swarm counts per service, that is per version). Swarm also needs
    the instance's CPUs and memory free on the node, which is not looked at.
    """
    equalities = [constraint for constraint in spec.constraints if constraint.kind in ("equals", "not_equals")]
    most = next((constraint.value for constraint in spec.constraints if constraint.kind == "max_per_node"), None)
    placed = Counter(task.node_id for task in (version.tasks if version else ()) if task.desired_state == "running")
    return sorted(
        node.hostname or node.id
        for node in nodes
        if node.state == "ready"
        and node.availability == "active"
        and all(_meets(constraint, node) for constraint in equalities)
        and (most is None or placed[node.id] < most)
    )


def _meets(constraint, node) -> bool:
    """Swarm's reading of a constraint: a label the node lacks is '', and values compare regardless of case."""
    if constraint.attribute == "node.hostname":
        found = node.hostname
    else:
        found = node.labels.get(constraint.attribute[len("node.labels.") :], "")
    equal = found.lower() == constraint.value.lower()
    return equal if constraint.kind == "equals" else not equal


def version_summary(versions: list, ready_ids: frozenset) -> list:
    """Each version service: its name, version id, image, instances asked for and serving."""
    counts = ready_counts(versions, ready_ids)
    return [
        {
            "service": version.name,
            "version": version.version_id,
            "image": version.spec.image if version.spec else None,
            "replicas": version.replicas,
            "serving": counts[version.version_id],
        }
        for version in versions
    ]


def plan_steps(versions: list, wanted: AppSpec, ready_ids: frozenset, route_changes: bool, nodes: list) -> list:
    """The steps a convergence to wanted takes when every started instance turns healthy (check mode's plan).

    Each step names its nodes (nodes: the Swarm's, SwarmClient.nodes()):
    for a start or a wait, those eligible for the new version; for a drain or
    a remove, those its instances run on now; for a configure (the version's
    configuration published, then rendered on every node), those eligible
    too; none for a route or a create.
    """
    steps = [{"action": "route", "count": 0, "version": wanted.version_id}] if route_changes else []
    existing = {version.version_id for version in versions}
    if wanted.version_id not in existing:
        if wanted.config:
            steps.append({"action": "configure", "count": 0, "version": wanted.version_id})
        steps.append({"action": "create", "count": 0, "version": wanted.version_id})
    fleet = fleet_of(versions, wanted.version_id, ready_ids)
    counts = ready_counts(versions, ready_ids)
    old_version = max(
        (version for version in versions if version.version_id != wanted.version_id),
        key=lambda version: counts[version.version_id],
        default=None,
    )
    old_id = old_version.version_id if old_version else ""
    steps.extend(
        step.to_dict() for step in rollout.plan(fleet, wanted.instances, strategy(wanted), old_id, wanted.version_id)
    )
    # A version that serves is drained to 0 first; one that serves nothing is removed with what it asks for.
    steps.extend(
        {
            "action": "remove",
            "count": 0 if counts[version.version_id] else version.replicas,
            "version": version.version_id,
        }
        for version in versions
        if version.version_id != wanted.version_id
    )
    by_version = {version.version_id: version for version in versions}
    eligible = eligible_nodes(nodes, wanted, by_version.get(wanted.version_id))

    def where(step: dict) -> list:
        if step["action"] in ("drain", "remove"):
            return running_nodes(by_version[step["version"]])
        return eligible if step["action"] in ("start", "wait", "configure") else []

    return [{**step, "nodes": where(step)} for step in steps]


def strategy(spec: AppSpec) -> rollout.Strategy:
    return rollout.Strategy(spec.upgrade.minimum_health_capacity, spec.upgrade.maximum_over_capacity)


def converged(versions: list, wanted: AppSpec) -> bool:
    """Only the wanted version's service exists, asking for the wanted instance count."""
    return [(version.version_id, version.replicas) for version in versions] == [(wanted.version_id, wanted.instances)]


# -- results ----------------------------------------------------------------------------
@dataclass
class StepRecord:
    """One step as the result reports it; the ledger keeps its name, duration and whether it succeeded."""

    action: str  # route, configure, create, start, drain, wait, remove, withdraw, revoke (the config token)
    count: int
    version: str
    started: str
    duration: float = 0.0
    outcome: str = "ok"  # ok, failed, or timed out (a wait that the deployment does not fail on)

    @property
    def name(self) -> str:
        return f"{self.action} {self.count} {self.version}" if self.count else f"{self.action} {self.version}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Plan:
    """What apply() would do, changing nothing: check mode's answer."""

    changed: bool
    versions: list  # version_summary()
    diff: dict | None  # SpecDiff fields; None on a first deployment or a removal
    steps: list
    route: dict | None  # {"before", "after"} when the route changes

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Result:
    changed: bool
    deployment: str | None
    steps: list = field(default_factory=list)
    versions: list = field(default_factory=list)  # version_summary() at the end

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _diff_dict(diff) -> dict | None:
    if diff is None:
        return None
    return {"changed": list(diff.changed), "before": diff.before, "after": diff.after, "rolls": diff.rolls}


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


@dataclass
class _Run:
    """One apply() in progress: its lock, ledger entry, steps and deadline."""

    lock: DeploymentLock
    deployment: object  # ledger.Deployment
    deadline: float
    steps: list = field(default_factory=list)


# -- the deployer -----------------------------------------------------------------------
class Deployer:
    """Deploys apps with a Swarm manager, the platform's Consul and a ZooKeeper session (opened by the caller).

    tokens (appconfig.tokens.AppTokens, on a client that may write ACLs) makes
    and removes the token of each app with configuration; config_wait bounds
    the wait for every node to render a new version's configuration.
    routers: None leaves the routers out of readiness (an instance serves once
    it is healthy and registered); a tuple of router node names makes the
    deployer wait, for apps with a route, until each started instance is UP
    in the app's backend on every router that reports and on each one named
    there (which must report). max_entries bounds the ledger's history per
    app. clock (monotonic seconds), wall (epoch seconds) and sleep are for tests.
    """

    def __init__(
        self,
        swarm: SwarmClient,
        consul,
        session,
        prefix: str = "dockyard/",
        routers: tuple | None = None,
        reserved_ports: tuple = (),
        service_port_range: tuple | None = None,
        margin: float = DEFAULT_MARGIN_SECONDS,
        task_failure_limit: int = DEFAULT_TASK_FAILURES,
        poll: float = DEFAULT_POLL_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        tokens=None,
        config_wait: float = DEFAULT_CONFIG_WAIT_SECONDS,
        clock=time.monotonic,
        wall=time.time,
        sleep=time.sleep,
    ):
        self.swarm = swarm
        self.consul = consul
        self.session = session
        self.ledger = Ledger(session, max_entries)
        self.prefix = prefix
        self.routers = routers
        self.reserved_ports = reserved_ports
        self.service_port_range = service_port_range
        self.margin = margin
        self.task_failure_limit = task_failure_limit
        self.poll = poll
        self.tokens = tokens
        self.config_wait = config_wait
        self.clock = clock
        self.wall = wall
        self.sleep = sleep

    # -- reading ------------------------------------------------------------------------
    def _ready_ids(self, app: str, versions: list, spec: AppSpec) -> frozenset:
        registered = registered_instances(self.consul.kv_recurse(f"{self.prefix}instances/"), self.prefix, app)
        unrouted = self._unrouted(app, registered, spec)
        needs_registration = spec.container_port is not None
        return frozenset(
            task.id
            for version in versions
            for task in version.tasks
            if task_ready(task, registered, needs_registration, unrouted)
        )

    def _unrouted(self, app: str, registered: dict, spec: AppSpec) -> frozenset:
        """Registered tasks not yet UP on every router that reports and every one named in routers.

        None when routers are not checked (routers None) or the app has no route; with no router named and none
        reporting (no reporter deployed), none either.
        """
        if self.routers is None or route_document(spec, None) is None:
            return frozenset()
        reports, _skipped = read_routers(self.consul, self.prefix)
        backend, now = backend_name(app), self.wall()
        return frozenset(
            task
            for task, instance in registered.items()
            if waiting_for(reports, backend, [(instance.addr, instance.port)], self.routers, now)
        )

    def _last_spec(self, app: str) -> AppSpec | None:
        entry = self.ledger.last_successful(app)
        return entry_spec(entry) if entry and entry.spec else None

    def _route_plan(self, spec: AppSpec | None, app: str):
        current = route_entries(self.consul.kv_read_tree(route_key(self.prefix, "")), self.prefix)
        stored = current.get(app)
        before = _json_or_none(stored.value) if stored else None
        wanted = route_document(spec, before if isinstance(before, dict) else None) if spec else None
        try:
            return route_plan(app, wanted, current, self.prefix, self.reserved_ports, self.service_port_range)
        except RouteError as error:
            raise DeployError(f"app {app}: the route cannot be written: {error}") from None

    def current_spec(self, app: str) -> AppSpec | None:
        """The app's spec as deployed (or as last recorded, or from any of its services); None when there is none.

        What state=absent works on: only the name is asked for, and whatever the app still has is removed.
        """
        versions = self.swarm.versions(app)
        last = self._last_spec(app)
        labelled = next((version.spec for version in versions if version.spec is not None), None)
        return deployed_spec(versions, last) or last or labelled

    # -- reporting ----------------------------------------------------------------------
    def status(self, app: str, history: int) -> dict:
        """An app as app_info reports it: each version's instances asked for and serving, and its newest entries."""
        versions = self.swarm.versions(app)
        entries = self.ledger.history(app)
        last = next((entry for entry in entries if entry.outcome == "succeeded" and entry.spec), None)
        spec = deployed_spec(versions, entry_spec(last) if last else None)
        ready = self._ready_ids(app, versions, spec) if spec is not None else frozenset()
        summary = version_summary(versions, ready)
        return {
            "name": app,
            "version": spec.version_id if spec is not None else None,
            "desired": sum(version["replicas"] for version in summary),
            "serving": sum(version["serving"] for version in summary),
            "versions": summary,
            "config": self.config_report(versions),
            "history": [entry.to_json() for entry in entries[:history]],
        }

    def config_report(self, versions: list) -> list:
        """Per version with configuration and per node: what the node's agent rendered (the Consul index of the
        newest key it rendered, the templates in error, whose last good file stays) and the instances it serves."""
        report = []
        for version in versions:
            if version.spec is None or not version.spec.config:
                continue
            statuses = self.config_statuses(version.name)
            running = {}
            for task in version.tasks:
                if task.state == "running":
                    running.setdefault(task.node or task.node_id, []).append(task.id)
            for node in sorted(set(statuses) | set(running)):
                status = statuses.get(node)
                report.append(
                    {
                        "version": version.version_id,
                        "node": node,
                        "rendered": bool(status and status.rendered),
                        "key_index": status.key_index if status else None,
                        "errors": dict(status.errors) if status else {"agent": "no report from this node's agent"},
                        "instances": sorted(running.get(node, [])),
                    }
                )
        return report

    # -- planning -----------------------------------------------------------------------
    def plan(self, spec: AppSpec, state: str = "present", as_recorded: bool = False) -> Plan:
        """What apply() would do now, or roll_back() with as_recorded; reads Swarm, Consul and the ledger only."""
        _check_state(state)
        versions = self.swarm.versions(spec.name)
        ready = self._ready_ids(spec.name, versions, spec)
        summary = version_summary(versions, ready)
        if state == "absent":
            route = self._route_plan(None, spec.name)
            steps = [
                {"action": "remove", "count": v.replicas, "version": v.version_id, "nodes": running_nodes(v)}
                for v in versions
            ]
            if route.changed:
                steps.append({"action": "route", "count": 0, "version": "", "nodes": []})
            return Plan(bool(steps), summary, None, steps, _route_change(route))
        last = self._last_spec(spec.name)
        if not as_recorded:
            spec = wanted_spec(spec, state, versions, last)
        deployed = deployed_spec(versions, last)
        diff = deployed.diff(spec) if deployed is not None else None
        route = self._route_plan(spec, spec.name)
        if converged(versions, spec) and not route.changed:
            return Plan(False, summary, _diff_dict(diff), [], None)
        steps = plan_steps(versions, spec, ready, route.changed, self.swarm.nodes())
        return Plan(True, summary, _diff_dict(diff), steps, _route_change(route))

    # -- applying -----------------------------------------------------------------------
    def apply(
        self,
        spec: AppSpec,
        state: str = "present",
        who: str | None = None,
        lock_timeout: float = 0,
        deadline: float = DEFAULT_DEADLINE_SECONDS,
    ) -> Result:
        """Makes the app what spec says (present, restarted or absent), waiting for it; DeployError when it cannot.

        restarted rolls every instance to fresh containers (wanted_spec()).
        """
        _check_state(state)
        return self._deploy(spec, state, who, lock_timeout, deadline, None)

    def roll_back(
        self,
        app: str,
        reference: str | None = None,
        who: str | None = None,
        lock_timeout: float = 0,
        deadline: float = DEFAULT_DEADLINE_SECONDS,
    ) -> Result:
        """Deploys a recorded spec: the version before the live one (reference None), or the entry reference names."""
        target = self.rollback_target(app, reference)
        return self._deploy(entry_spec(target), "present", who, lock_timeout, deadline, target.deployment)

    def rollback_target(self, app: str, reference: str | None = None):
        """The ledger entry roll_back() deploys; DeployError naming what is missing when there is none."""
        live = deployed_spec(self.swarm.versions(app), self._last_spec(app))
        target = rollback_entry(self.ledger.history(app), live.version_id if live else None, reference)
        if target is None:
            wanted = f"deployment or version {reference}" if reference else "earlier succeeded version"
            raise DeployError(f"app {app}: rollback: the ledger has no {wanted}")
        return target

    def _deploy(self, spec, state, who, lock_timeout, deadline, rolled_back_to) -> Result:
        holder = Holder.here(new_deployment_id())
        holder = dataclasses.replace(holder, user=who or current_user())
        lock = DeploymentLock(self.session, spec.name, holder, lock_timeout)
        try:
            lock.acquire()
        except LedgerError as error:
            raise DeployError(str(error)) from None
        try:
            try:
                versions = self.swarm.versions(spec.name)
                if state == "absent":
                    return self._remove(spec.name, versions, lock, holder, deadline)
                last = self.ledger.last_successful(spec.name)
                last_spec = entry_spec(last) if last and last.spec else None
                previous = deployed_spec(versions, last_spec)
                if rolled_back_to is None:
                    # A rollback deploys the recorded spec as it was, its restart generation included.
                    spec = wanted_spec(spec, state, versions, last_spec)
                route = self._route_plan(spec, spec.name)
                if converged(versions, spec) and not route.changed:
                    # Not recorded: the ledger is the history of changes, and an unchanged rerun every hour
                    # would push real deployments out of its bounded length.
                    ready = self._ready_ids(spec.name, versions, spec)
                    return Result(False, None, [], version_summary(versions, ready))
                deployment = self.ledger.record(
                    spec.name, holder, spec.version_id, spec.image, spec.to_dict(), rolled_back_to=rolled_back_to
                )
            except (SwarmError, ConsulError, LedgerError) as error:
                raise DeployError(f"app {spec.name}: {error}; nothing was changed") from None
            run = _Run(lock, deployment, self.clock() + deadline)
            self._present(run, spec, previous, last, route, deadline)
            deployment.finish("succeeded")
            versions = self.swarm.versions(spec.name)
            return Result(
                True,
                holder.deployment,
                [step.to_dict() for step in run.steps],
                version_summary(versions, self._ready_ids(spec.name, versions, spec)),
            )
        finally:
            lock.release()

    def _present(self, run: _Run, spec: AppSpec, previous, last, route, deadline: float) -> None:
        try:
            if route.changed:
                self._step(run, "route", 0, spec.version_id, lambda: self._write_route(route))
            self._ensure_service(run, spec)
            self._converge(run, spec)
        except LedgerError as error:
            # The lock may be someone else's now (or ZooKeeper is gone): changing anything more could race
            # another deployment, so nothing is rolled back.
            with contextlib.suppress(LedgerError):
                run.deployment.finish("failed", error=str(error))
            raise DeployError(
                f"app {spec.name}: {error}; nothing was rolled back (another deployment may own the app now)",
                run.deployment.entry.deployment,
                _step_dicts(run),
            ) from None
        except (_RollFailed, SwarmError, ConsulError, DeployError) as error:
            self._recover(run, spec, previous, last, str(error), deadline)

    def _ensure_service(self, run: _Run, spec: AppSpec) -> None:
        if not any(version.version_id == spec.version_id for version in self.swarm.versions(spec.name)):
            if spec.config:
                self._step(run, "configure", 0, spec.version_id, lambda: self._configure(run, spec))
            self._step(run, "create", 0, spec.version_id, lambda: self.swarm.create(spec, 0))

    # -- configuration ------------------------------------------------------------------
    def _configure(self, run: _Run, spec: AppSpec) -> None:
        """Publishes the version's configuration and waits until every node it may run on has rendered it.

        Before its service exists: no instance starts before its files are
        there. A failure withdraws the definition again and names each node
        that did not render, with the templates' errors.
        """
        if self.tokens is None:
            raise DeployError(f"app {spec.name}: config needs config_token (a Consul token that may write ACLs)")
        secret, _created = self.tokens.ensure(spec.name, spec.environment, [t.prefix for t in spec.config])
        key = layout.definition_key(self.prefix, spec.service_name)
        definition = layout.Definition(spec.name, spec.service_name, secret, spec.config)
        if self.consul.request("PUT", kv_path(key), body=definition.to_json()).json() is not True:
            raise DeployError(f"app {spec.name}: Consul did not store the configuration at {key}")
        nodes = eligible_nodes(self.swarm.nodes(), spec)
        started = self.clock()
        deadline = min(run.deadline, started + self.config_wait)
        failing_since = None
        while True:
            run.lock.check()
            statuses = self.config_statuses(spec.service_name)
            missing = [node for node in nodes if node not in statuses or not statuses[node].ready]
            if not missing:
                return
            # A node that reports errors may yet recover (a read retried); one that keeps them is not waited for.
            failing = all(node in statuses and statuses[node].errors for node in missing)
            failing_since = (failing_since or self.clock()) if failing else None
            given_up = failing and self.clock() - failing_since >= CONFIG_ERROR_GRACE_SECONDS
            if given_up or self.clock() >= deadline:
                self._delete_definition(spec.service_name)
                raise DeployError(
                    f"app {spec.name}: the configuration of version {spec.version_id} was not rendered on"
                    f" {', '.join(config_problem(node, statuses.get(node)) for node in missing)}"
                    f" after {self.clock() - started:.0f}s; its definition was withdrawn"
                )
            self.sleep(self.poll)

    def config_statuses(self, service: str) -> dict:
        """{node: layout.Status} of one version service, as the nodes' agents published them (bad ones left out)."""
        found = {}
        for key, (value, _session) in self.consul.kv_recurse(f"{self.prefix}{layout.STATUSES}").items():
            node, _slash, name = key[len(self.prefix + layout.STATUSES) :].partition("/")
            if name != service:
                continue
            with contextlib.suppress(layout.LayoutError):
                found[node] = layout.parse_status(value, node, service)
        return found

    def _delete_definition(self, service: str) -> None:
        self.consul.request("DELETE", kv_path(layout.definition_key(self.prefix, service)))

    def _remove_service(self, name: str) -> None:
        """Removes a version's service, then its configuration (each node's agent deletes its files)."""
        self.swarm.remove(name)
        self._delete_definition(name)

    def _recover(self, run: _Run, spec: AppSpec, previous, last, reason: str, deadline: float) -> None:
        """Rolls back to previous after reason, then raises DeployError saying whether the rollback completed.

        With no previous version (a first deployment), the version started is removed.
        """
        app, deployment = spec.name, run.deployment
        run.deadline = self.clock() + deadline
        back_to = f"version {previous.version_id}" if previous else f"nothing (removing version {spec.version_id})"
        try:
            # The route the previous version had (none before a first deployment).
            route = self._route_plan(previous, app)
            if route.changed:
                self._step(run, "route", 0, spec.version_id, lambda: self._write_route(route))
            if previous is None:
                self._remove_versions(run, app, only=spec.version_id)
            else:
                self._ensure_service(run, previous)
                if previous.version_id == spec.version_id:
                    self._restore_count(run, previous)
                self._converge(run, previous)
        except (_RollFailed, SwarmError, ConsulError, LedgerError, DeployError) as error:
            left = []
            with contextlib.suppress(SwarmError):
                left = version_summary(self.swarm.versions(app), frozenset())
            with contextlib.suppress(LedgerError):
                deployment.finish("failed", error=f"{reason}; the rollback did not complete: {error}")
            raise DeployError(
                f"app {app}: deployment failed: {reason}; the rollback to {back_to} did not complete: {error};"
                f" left: {json.dumps(left)}",
                deployment.entry.deployment,
                _step_dicts(run),
            ) from None
        if previous is None:
            deployment.finish("failed", error=reason)
            raise DeployError(
                f"app {app}: deployment failed: {reason}; there was nothing to roll back to, so version"
                f" {spec.version_id} was removed",
                deployment.entry.deployment,
                _step_dicts(run),
            )
        deployment.finish("rolled back", error=reason, rolled_back_to=last.deployment if last else None)
        raise DeployError(
            f"app {app}: deployment failed: {reason}; the rollback completed: version {previous.version_id}"
            f" serves with {previous.instances} instance(s)",
            deployment.entry.deployment,
            _step_dicts(run),
        )

    def _restore_count(self, run: _Run, previous: AppSpec) -> None:
        """A failed scale goes back to the count that served in one write.

        Swarm stops the surplus, preferring tasks that do not run; next_actions
        would drain serving instances as readily as failing ones.
        """
        current = next(v.replicas for v in self.swarm.versions(previous.name) if v.version_id == previous.version_id)
        if current != previous.instances:
            action = "drain" if current > previous.instances else "start"
            name, count = previous.service_name, abs(current - previous.instances)
            self._step(run, action, count, previous.version_id, lambda: self.swarm.scale(name, previous.instances))

    def _remove(self, app: str, versions: list, lock, holder, deadline: float) -> Result:
        route = self._route_plan(None, app)
        if not versions and not route.changed:
            return Result(False, None)
        # The entry records what was removed, with no instance left.
        first = next((version.spec for version in versions if version.spec is not None), None)
        recorded = {**first.to_dict(), "instances": 0} if first else {}
        deployment = self.ledger.record(
            app, holder, first.version_id if first else "absent", first.image if first else "absent", recorded
        )
        run = _Run(lock, deployment, self.clock() + deadline)
        try:
            self._remove_versions(run, app)
            if route.changed:
                self._step(run, "route", 0, "", lambda: self._write_route(route))
            self._wait_withdrawn(run, app, "")
            if first is not None and first.config and self.tokens is not None:
                self._step(run, "revoke", 0, "", lambda: self.tokens.remove(app, first.environment))
        except (SwarmError, ConsulError, LedgerError, DeployError) as error:
            with contextlib.suppress(LedgerError):
                deployment.finish("failed", error=str(error))
            raise DeployError(f"app {app}: removal failed: {error}", holder.deployment) from None
        deployment.finish("succeeded")
        return Result(True, holder.deployment, [step.to_dict() for step in run.steps], [])

    def _remove_versions(self, run: _Run, app: str, keep: str | None = None, only: str | None = None) -> None:
        """Removes version services (all, all but keep, or only only): Swarm stops their tasks with the drain signal."""
        for version in self.swarm.versions(app):
            if version.version_id != keep and only in (None, version.version_id):
                name = version.name
                self._step(
                    run, "remove", version.replicas, version.version_id, lambda name=name: self._remove_service(name)
                )

    # -- the loop -----------------------------------------------------------------------
    def _converge(self, run: _Run, target: AppSpec) -> None:
        """Steps the fleet to target.instances serving instances of target's version, then removes the others."""
        app, version_id = target.name, target.version_id
        readiness = readiness_seconds(target, self.margin)
        plan = strategy(target)
        versions = self.swarm.versions(app)
        baseline = frozenset(task.id for version in versions for task in version.tasks)
        progress_at, best = self.clock(), -1
        waiting, waiting_at = None, 0.0
        while True:
            versions = self.swarm.versions(app)
            ready = self._ready_ids(app, versions, target)
            fleet = fleet_of(versions, version_id, ready)
            now = self.clock()
            if fleet.new_healthy > best:
                progress_at, best = now, fleet.new_healthy
            new = next((version for version in versions if version.version_id == version_id), None)
            reason = failure_reason(
                fleet,
                task_failures(new.tasks if new else (), baseline),
                now - progress_at,
                readiness,
                self.task_failure_limit,
                version_id,
            )
            if reason is None and now > run.deadline:
                reason = f"the deadline passed with {fleet.new_healthy} of {target.instances} instance(s) serving"
            actions = rollout.next_actions(fleet, target.instances, plan)
            done = reason is None and actions.idle and not fleet.new_starting
            if waiting is not None and (reason or done or not actions.idle):
                waiting.duration = round(now - waiting_at, 3)
                waiting.outcome = "failed" if reason else "ok"
                self._record(run, waiting)
                waiting = None
            if reason is not None:
                raise _RollFailed(reason)
            if done:
                break
            if actions.idle:
                if waiting is None:
                    waiting, waiting_at = StepRecord("wait", fleet.new_starting, version_id, _utc(self.wall())), now
                self.sleep(self.poll)
                continue
            self._act(run, versions, ready, target, fleet, actions)
            if actions.start_new:
                progress_at = self.clock()
        self._remove_versions(run, app, keep=version_id)
        self._wait_withdrawn(run, app, version_id)

    def _wait_withdrawn(self, run: _Run, app: str, version_id: str) -> None:
        """Waits until the drained and removed instances have left Consul, so no router sends them anything new.

        The registrator withdraws an instance on the stop signal's kill event,
        a moment after Swarm decided to stop it. Past the margin the step is
        recorded as timed out and the deployment goes on: the registrator
        withdraws the instance when its container stops at the latest.
        """
        started, record = self.clock(), None
        while True:
            registered = registered_instances(self.consul.kv_recurse(f"{self.prefix}instances/"), self.prefix, app)
            pending = still_registered(registered, self.swarm.versions(app), version_id)
            now = self.clock()
            if record is None and pending:
                record = StepRecord("withdraw", len(pending), version_id, _utc(self.wall()))
            if not pending or now - started > self.margin:
                break
            self.sleep(self.poll)
        if record is not None:
            record.duration, record.outcome = round(now - started, 3), "timed out" if pending else "ok"
            self._record(run, record)

    def _act(self, run: _Run, versions: list, ready: frozenset, target: AppSpec, fleet, actions) -> None:
        version_id = target.version_id
        new = next((version for version in versions if version.version_id == version_id), None)
        if new is None:
            raise _RollFailed(f"the service {target.service_name} was removed by someone else during the deployment")
        for service, replicas in old_drains(versions, version_id, ready, actions.drain_old):
            old_id = next(version.version_id for version in versions if version.name == service)
            count = ready_counts(versions, ready)[old_id] - replicas
            self._step(run, "drain", count, old_id, lambda s=service, r=replicas: self.swarm.scale(s, r))
        replicas = new.replicas - actions.drain_new + actions.start_new
        if actions.drain_new:
            # Scaling down and up in one write is not asked for by next_actions (it drains new only with no old).
            self._step(run, "drain", actions.drain_new, version_id, lambda: self.swarm.scale(new.name, replicas))
        elif actions.start_new:
            self._step(run, "start", actions.start_new, version_id, lambda: self.swarm.scale(new.name, replicas))

    # -- steps --------------------------------------------------------------------------
    def _step(self, run: _Run, action: str, count: int, version: str, change) -> None:
        """Checks the lock, makes the change, records it (in the result and the ledger) whether or not it worked."""
        run.lock.check()
        record = StepRecord(action, count, version, _utc(self.wall()))
        started = self.clock()
        try:
            change()
        except BaseException:
            record.duration, record.outcome = round(self.clock() - started, 3), "failed"
            with contextlib.suppress(LedgerError):
                self._record(run, record)
            raise
        record.duration = round(self.clock() - started, 3)
        self._record(run, record)

    def _record(self, run: _Run, record: StepRecord) -> None:
        run.steps.append(record)
        run.deployment.add_step(record.name, record.duration, record.outcome == "ok")

    def _write_route(self, planned) -> None:
        """Writes (or deletes) the route with check-and-set on the index read, then reads it back."""
        query = {"cas": str(planned.modify_index)}
        if planned.after is None:
            answer = self.consul.request("DELETE", kv_path(planned.key), params=query)
        else:
            answer = self.consul.request("PUT", kv_path(planned.key), params=query, body=planned.after)
        if answer.json() is not True:
            raise DeployError(f"{planned.key} changed while the deployment ran (check-and-set refused)")
        stored = self.consul.request("GET", kv_path(planned.key), params={"raw": "true"})
        found = None if stored.status == 404 else _json_or_none(stored.body or b"null")
        if found != planned.after:
            raise DeployError(f"{planned.key} does not hold what was written when read back (another writer?)")


def _check_state(state: str) -> None:
    if state not in ("present", "absent", "restarted"):
        raise DeployError(f"state: expected present, absent or restarted, got {state!r}")


def _step_dicts(run: _Run) -> tuple:
    return tuple(step.to_dict() for step in run.steps)


def entry_spec(entry) -> AppSpec:
    """The spec a ledger entry recorded (check mode's plan of a rollback needs it too)."""
    try:
        return parse_spec(entry.spec)
    except SpecError as error:
        raise DeployError(f"ledger entry {entry.app}/{entry.sequence}: its spec no longer parses: {error}") from None


def _json_or_none(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def _route_change(planned) -> dict | None:
    return {"before": planned.before, "after": planned.after} if planned.changed else None
