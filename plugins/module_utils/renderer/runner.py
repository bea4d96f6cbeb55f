# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runner: when to render what, and what to do around a render.

- Quiescence: a change to a template's dependencies starts a wait of
  wait.min, extended by each further change, but never past wait.max after
  the first one; a burst of changes gives one render.
- A render that would not change the live file writes and runs nothing.
- The check command runs on the candidate before it replaces the live file;
  the command (a reload) runs after, with a timeout; if it fails the previous
  file goes back and the command runs again. Nothing here stops the daemon.
- When a candidate fails its check, the entries that routing_table() weighed
  are bisected to find the ones the check fails with; those are quarantined
  (logged, left out until their value changes) and the rest renders, so one
  bad key cannot freeze every other change.
- max_drop refuses a render whose ls()/tree() lost too many of the most
  entries a live render held within max_drop_window (baseline.py).
- Data a template skipped (warn(), routing_table() errors) is logged at error
  level with the template's name when it first appears; the rest renders.
- Modes: daemon (watch and render until stopped), once (render all and
  report), dry (once, printing instead of writing, no commands). Exec mode is
  the daemon plus a child process (child.py) notified through on_change.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from ..daemon import logs
from ..daemon.consul import ConsulClient, ConsulError
from ..daemon.retry import backoff_delay
from . import baseline as baselines
from . import commands
from . import render as files
from . import template as templates
from .brain import Brain
from .watch import Stats, View

MAX_ISOLATION_CHECKS = 64
FETCH_ROUNDS = 20  # executions of one template, each fetching the reads it newly found, before giving up
FETCH_ATTEMPTS = 3  # tries of one fetch before its ConsulError stands


def fetch(dependency, client, attempts: int = FETCH_ATTEMPTS, backoff: float = 0.25, max_backoff: float = 2.0):
    """dependency's data, read now (no blocking query); a ConsulError only after `attempts` failed tries."""
    for attempt in range(1, attempts + 1):
        try:
            return dependency.fetch(client)[0]
        except ConsulError:
            if attempt == attempts:
                raise
            time.sleep(backoff_delay(attempt, backoff, max_backoff))
    return None


def complete(template, brain, client, quarantine=None, on_data=None, rounds: int = FETCH_ROUNDS, **retry):
    """Fetch until complete: executes template, fetching what it reads that brain lacks, until nothing is.

    The one loop of the render module and the daemon's once and dry modes.
    Returns the last execution: its unfetched list is empty unless the
    template kept finding new reads for `rounds` executions. on_data(dependency,
    data) sees every fetched value (the module masks secrets with it).
    Raises ConsulError (see fetch(); retry takes its attempts and back-off).
    """
    execution = template.execute(brain, quarantine)
    for _round in range(rounds - 1):
        if not execution.unfetched:
            break
        for dependency in execution.unfetched:
            data = fetch(dependency, client, **retry)
            if on_data is not None:
                on_data(dependency, data)
            brain.remember(dependency, data)
        execution = template.execute(brain, quarantine)
    return execution


def _file_settings(config) -> dict:
    """What check_candidate() and swap() take from a template's configuration besides the destination."""
    return {
        "check": config.check,
        "timeout": config.command_timeout,
        "mode": config.mode,
        "user": config.user,
        "group": config.group,
    }


class _BudgetSpent(Exception):
    """Isolating the entries a check fails with took more checks than allowed."""


@dataclass
class TemplateState:
    config: object
    template: object = None
    load_error: str | None = None
    dependencies: list = field(default_factory=list)
    first_change: float | None = None
    last_change: float | None = None
    settled: bool = False  # rendered, or found the live file already right, at least once
    baseline: object = None  # baseline.Baseline for max_drop, made when first needed
    accept_drop: bool = False  # the operator's override: the next render may drop entries and resets the baseline
    render_count: int = 0
    last_render: float | None = None  # wall clock
    last_error: str | None = None
    waiting_for: str | None = None  # for the status endpoint: what the template waits for, in words
    missing: list = field(default_factory=list)  # keys the last execution read that do not exist
    skipped: list = field(default_factory=list)  # the last complete execution's warnings
    skipped_total: int = 0
    errors: int = 0
    check_failures: int = 0
    command_failures: int = 0
    refusals: int = 0
    quarantine: dict = field(default_factory=dict)  # full path -> value the check failed with

    @property
    def pending(self) -> bool:
        return self.first_change is not None


def connect(config) -> ConsulClient:
    """The Consul client a configuration asks for; ConsulError or OSError when its token or TLS files are unusable."""
    return ConsulClient(config.consul, max_stale=config.watch.max_stale)


def render_allowance(config) -> float:
    """How long one render of a template may keep the loop busy: its check, its command and the command's rerun."""
    commands_run = (1 if config.check else 0) + (2 if config.command else 0)
    return commands_run * config.command_timeout


class Runner:
    def __init__(self, config, client=None, dry: bool = False, stdout=None, on_change=None):
        self.config = config
        self.client = client or connect(config)
        self.dry = dry
        self.stdout = stdout
        self.on_change = on_change
        self.brain = Brain()
        self.stats = Stats()
        self.views = {}
        self.states = []
        self.started = time.time()
        self.heartbeat = time.monotonic()
        self.busy_with = None  # what the loop is doing past its heartbeat, for the status endpoint
        self.busy_allowance = 0.0  # how long that may take: health counts the loop stuck only past it
        self._cond = threading.Condition()
        self._stopping = False
        self._reload_requested = False
        self.load(config)

    # -- configuration -----------------------------------------------------------------
    def load(self, config) -> None:
        """Takes a (new) configuration; keeps each template's history by name."""
        previous = {state.config.name: state for state in self.states}
        states = []
        for template_config in config.templates:
            state = previous.get(template_config.name) or TemplateState(template_config)
            state.config = template_config
            state.template, state.load_error = None, None
            try:
                state.template = templates.load(template_config)
            except templates.TemplateError as error:
                state.load_error = str(error)
                state.last_error = str(error)
                state.errors += 1
                logs.event(
                    logging.ERROR, "template not loaded, live file kept", template=template_config.name, error=error
                )
            state.first_change = state.last_change = time.monotonic()
            states.append(state)
        self.config = config
        with self._cond:
            self.states = states

    def request_reload(self) -> None:
        with self._cond:
            self._reload_requested = True
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for view in list(self.views.values()):
            view.stop()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def accept_drop(self, name: str) -> bool:
        """An operator's override: the next render of `name` may drop entries."""
        with self._cond:
            for state in self.states:
                if state.config.name == name:
                    state.accept_drop = True
                    state.first_change = state.last_change = time.monotonic()
                    self._cond.notify_all()
                    return True
        return False

    # -- data --------------------------------------------------------------------------
    def deliver(self, dependency, data) -> None:
        """Called by watchers with new data for a dependency."""
        if not self.brain.remember(dependency, data):
            return
        now = time.monotonic()
        with self._cond:
            for state in self.states:
                if dependency in state.dependencies:
                    if state.first_change is None:
                        state.first_change = now
                    state.last_change = now
            self._cond.notify_all()

    def _sync_watches(self) -> None:
        needed = set()
        for state in self.states:
            needed.update(state.dependencies)
        for dependency in needed:
            view = self.views.get(dependency)
            if view is None or view.stopping or not view.is_alive():
                # A view that died (it should not) hands on its failures, so its replacement backs off.
                failures = view.failures if view is not None and not view.stopping else 0
                view = View(dependency, self.client, self.config.watch, self.deliver, self.stats, failures)
                self.views[dependency] = view
                view.start()
        for dependency in list(self.views):
            if dependency not in needed:
                self.views.pop(dependency).stop()
                self.brain.forget(dependency)

    def _restart_watches(self) -> None:
        """Stops every view; _sync_watches starts them again with the current client and settings."""
        views, self.views = self.views, {}
        for view in views.values():
            view.stop()

    def _beat(self, busy_with: str | None = None, allowance: float = 0.0) -> None:
        """The loop is alive; it may now be busy with `busy_with` for up to `allowance` seconds."""
        self.heartbeat = time.monotonic()
        self.busy_with, self.busy_allowance = busy_with, allowance

    # -- one template ------------------------------------------------------------------
    def _fail(self, state, message: str, counter: str = "errors", **fields) -> str:
        state.last_error = message
        setattr(state, counter, getattr(state, counter) + 1)
        logs.event(logging.ERROR, message, template=state.config.name, destination=state.config.destination, **fields)
        return "failed"

    def process(self, state, isolate: bool = True) -> str:
        """Executes and (if due) renders one template; returns what happened.

        One of: rendered, attributes (owner, group or mode set on the live
        file, contents unchanged), unchanged, waiting, missing, failed, refused.
        """
        if state.template is None:
            state.last_error = state.load_error
            return "failed"
        execution = state.template.execute(self.brain, state.quarantine)
        state.quarantine = {path: state.quarantine[path] for path in execution.held}
        state.dependencies = list(execution.used)
        state.missing = list(execution.missing)
        if execution.unfetched:
            state.waiting_for = ", ".join(str(dep) for dep in execution.unfetched)
            return "waiting"
        if execution.missing:
            state.waiting_for = "missing key(s) " + ", ".join(execution.missing)
            if state.config.missing_consul_key == "fail":
                self._fail(state, "missing key(s): {}".format(", ".join(execution.missing)))
            else:
                logs.event(
                    logging.WARNING,
                    "waiting for missing key(s), live file kept",
                    template=state.config.name,
                    keys=",".join(execution.missing),
                )
            return "missing"
        state.waiting_for = None
        self._report_skipped(state, execution.warnings)
        if execution.error:
            return self._fail(state, f"template failed, live file kept: {execution.error}")
        refusal = self._drop_refusal(state, execution.sizes)
        if refusal:
            self._fail(state, refusal, "refusals")
            return "refused"
        outcome = self._apply(state, execution, isolate)
        if outcome in ("rendered", "attributes", "unchanged"):
            self._record_sizes(state, execution.sizes)
            state.accept_drop = False
            state.settled = True
            state.last_error = None
        return outcome

    def _report_skipped(self, state, warnings: list) -> None:
        """Logs each piece of skipped data at error level once, when it appears."""
        for message in warnings:
            if message not in state.skipped:
                state.skipped_total += 1
                logs.event(
                    logging.ERROR,
                    "template skipped data",
                    template=state.config.name,
                    destination=state.config.destination,
                    error=message,
                )
        state.skipped = list(warnings)

    def _baseline(self, state):
        """The template's max_drop baseline, read from the state directory when there is one (never in dry mode)."""
        config = state.config
        persisted = self.config.state_dir is not None and not self.dry
        path = baselines.state_path(self.config.state_dir, config.name) if persisted else None
        known = state.baseline
        if known is None or (known.path, known.destination) != (path, config.destination):
            state.baseline = baselines.Baseline(config.name, config.destination, path)
            if state.baseline.problem:
                logs.event(
                    logging.ERROR,
                    "max_drop state file ignored, starting without a baseline",
                    template=config.name,
                    error=state.baseline.problem,
                )
        return state.baseline

    def _drop_refusal(self, state, sizes: dict) -> str | None:
        limit = state.config.max_drop
        if limit is None or state.accept_drop:
            return None
        fall = self._baseline(state).fall(sizes, limit, state.config.max_drop_window)
        if fall is None:
            return None
        (function, prefix), largest, now = fall
        return (
            f"render refused, live file kept: {function}({prefix}) fell from {largest} to {now} entries"
            f" (max_drop {round(limit * 100)}% of the most live in the last {state.config.max_drop_window:g}s)"
        )

    def _record_sizes(self, state, sizes: dict) -> None:
        """The live render's ls()/tree() counts join the baseline (an accepted drop replaces it)."""
        if state.config.max_drop is None:
            return
        baseline = self._baseline(state)
        try:
            if state.accept_drop:
                baseline.reset(sizes)
            else:
                baseline.record(sizes, state.config.max_drop_window)
        except OSError as error:
            logs.event(
                logging.ERROR,
                "max_drop baseline not saved: a restart would start without it",
                template=state.config.name,
                file=baseline.path,
                error=error,
            )

    def _passes(self, state, quarantine: dict, live) -> bool:
        self._beat(f"isolating the entries {state.config.name}'s check fails with", render_allowance(state.config))
        trial = state.template.execute(self.brain, quarantine)
        if not trial.complete:
            return False
        return files.check_candidate(
            state.config.destination, trial.contents, **_file_settings(state.config), live=live
        ).ok

    def _isolate(self, state, execution, live) -> dict:
        """The entries (path -> value) the check fails with; empty when it fails without them too.

        Bisection: with the entries found so far left out, the shortest
        leading run of the others that fails the check ends in an offender.
        At most MAX_ISOLATION_CHECKS checks run.
        """
        budget = [MAX_ISOLATION_CHECKS]

        def passes(excluded) -> bool:
            if budget[0] <= 0:
                raise _BudgetSpent
            budget[0] -= 1
            quarantine = dict(state.quarantine)
            quarantine.update((path, execution.items[path]) for path in excluded)
            return self._passes(state, quarantine, live)

        remaining, offenders = list(execution.items), []
        try:
            if not passes(remaining):
                return {}
            while not passes(offenders):
                low, high = 0, len(remaining)  # including remaining[:low] passes, remaining[:high] fails
                while high - low > 1:
                    middle = (low + high) // 2
                    if passes(offenders + remaining[middle:]):
                        low = middle
                    else:
                        high = middle
                offenders.append(remaining.pop(high - 1))
        except _BudgetSpent:
            return {}
        return {path: execution.items[path] for path in offenders}

    def _apply(self, state, execution, isolate: bool = True) -> str:
        config = state.config
        contents = execution.contents
        if self.dry:
            stream = self.stdout
            # Dry mode is read by people: a value that is not UTF-8 shows as replacement characters.
            stream.write(f"> {config.destination}\n{contents.decode('utf-8', 'replace')}")
            stream.flush()
            return "rendered"
        live = files.read_live(config.destination)
        try:
            swapped = files.swap(config.destination, contents, **_file_settings(config), live=live)
        except files.CommitError as error:
            return self._fail(state, f"cannot replace live file: {error}")
        except (OSError, KeyError) as error:
            return self._fail(state, f"cannot write candidate: {error}")
        if swapped.status == "unchanged":
            return "unchanged"
        if swapped.status == "attributes":
            logs.event(
                logging.INFO,
                "owner, group or mode set, contents unchanged",
                template=config.name,
                destination=config.destination,
            )
            return "attributes"
        if swapped.status == "check failed":
            checked = swapped.checked
            offenders = self._isolate(state, execution, live) if isolate and execution.items else {}
            if not offenders:
                return self._fail(state, f"check failed, live file kept: {checked.describe()}", "check_failures")
            for path in offenders:
                logs.event(
                    logging.ERROR,
                    "entry left out: the configuration check fails with it",
                    template=config.name,
                    key=path,
                    error=checked.describe(),
                )
            state.quarantine.update(offenders)
            return self.process(state, isolate=False)
        state.render_count += 1
        state.last_render = time.time()
        logs.event(logging.INFO, "rendered", template=config.name, destination=config.destination)
        if config.command:
            ran = commands.run(config.command, config.command_timeout)
            if not ran.ok:
                files.restore(config.destination, live)
                again = commands.run(config.command, config.command_timeout)
                return self._fail(
                    state,
                    f"command failed, previous file restored: {ran.describe()}",
                    "command_failures",
                    rerun="ok" if again.ok else again.describe(),
                )
            # Its output too: a command that succeeds may still have something to say (a reload without its
            # server state, say), and the renderer's log is where an operator looks.
            said = {"output": ran.output.strip()[-500:]} if ran.output.strip() else {}
            logs.event(logging.INFO, "command ran", template=config.name, **said)
        if self.on_change is not None:
            self.on_change(state)
        return "rendered"

    # -- modes -------------------------------------------------------------------------
    def once(self) -> dict:
        """Renders every template once (fetching what they read); returns name -> outcome."""
        results = {}
        watch = self.config.watch
        for state in self.states:
            if state.template is not None:
                try:
                    complete(
                        state.template,
                        self.brain,
                        self.client,
                        state.quarantine,
                        backoff=watch.backoff,
                        max_backoff=min(watch.max_backoff, 2),
                    )
                except ConsulError as error:
                    results[state.config.name] = self._fail(state, str(error))
                    continue
            outcome = self.process(state)
            if outcome == "waiting":
                outcome = self._fail(state, f"the template kept finding new Consul reads; gave up after {FETCH_ROUNDS}")
            if outcome == "missing" and state.config.missing_consul_key != "fail":
                outcome = self._fail(state, "missing key(s): {}".format(", ".join(state.missing)))
            results[state.config.name] = outcome
        return results

    def _due(self, state, now: float) -> float | None:
        if not state.pending:
            return None
        if not state.settled:
            return now  # the first render does not wait for quiescence
        wait = self.config.wait_for(state.config)
        if wait.min <= 0:
            return now
        return min(state.last_change + wait.min, state.first_change + max(wait.max, wait.min))

    def run(self, on_cycle=None) -> None:
        """The daemon loop: returns once stop() is called."""
        logs.event(logging.INFO, "renderer started", templates=len(self.states), consul=self.config.consul.base_url)
        while True:
            with self._cond:
                if self._stopping:
                    break
                reload_requested, self._reload_requested = self._reload_requested, False
            if reload_requested and self.reloader is not None:
                self._reload()
            now = time.monotonic()
            self._beat()
            for state in list(self.states):
                due = self._due(state, now)
                if due is not None and due <= now:
                    with self._cond:
                        state.first_change = state.last_change = None
                    self._beat(f"rendering {state.config.name}", render_allowance(state.config))
                    try:
                        self.process(state)
                    except Exception as error:  # a bug in one template's path must not stop the others
                        self._fail(state, f"internal error: {error}")
            self._beat()
            self._sync_watches()
            if on_cycle is not None:
                on_cycle()
            with self._cond:
                if self._stopping or self._reload_requested:
                    continue
                now = time.monotonic()
                dues = [due for due in (self._due(state, now) for state in self.states) if due is not None]
                timeout = min([1.0] + [max(0.0, due - now) for due in dues])
                if timeout > 0:
                    self._cond.wait(timeout)
        for view in list(self.views.values()):
            view.stop()
        logs.event(logging.INFO, "renderer stopped")

    reloader = None  # set by the CLI: a callable that returns a new Config
    on_reload = None  # set by the CLI: applies what lies outside the runner (status endpoint, log level)

    def _reload(self) -> None:
        """Applies a new configuration whole: templates, Consul client (address, token, TLS), watch settings."""
        try:
            config = self.reloader()
            client = connect(config)
        except Exception as error:
            logs.event(logging.ERROR, "reload failed, configuration kept", error=error)
            return
        self.load(config)
        self.client = client
        self._restart_watches()
        if self.on_reload is not None:
            self.on_reload(config)
        logs.event(logging.INFO, "configuration reloaded", templates=len(self.states), consul=client.settings.base_url)

    # -- status ------------------------------------------------------------------------
    def snapshot(self) -> dict:
        templates_status = []
        for state in list(self.states):
            templates_status.append(
                {
                    "name": state.config.name,
                    "destination": state.config.destination,
                    "render_count": state.render_count,
                    "last_render": state.last_render,
                    "last_error": state.last_error,
                    "waiting_for": state.waiting_for,
                    "dependencies": len(state.dependencies),
                    "errors": state.errors,
                    "check_failures": state.check_failures,
                    "command_failures": state.command_failures,
                    "refusals": state.refusals,
                    "skipped": list(state.skipped),
                    "skipped_total": state.skipped_total,
                    "settled": state.settled,
                }
            )
        with self.stats.lock:
            requests, errors = self.stats.requests, self.stats.errors
        views = list(self.views.values())
        watch = self.config.watch
        return {
            "started": self.started,
            "heartbeat_age": time.monotonic() - self.heartbeat,
            "busy": {"with": self.busy_with, "allowance": self.busy_allowance},
            "log_level": self.config.log_level,
            "consul": {
                "address": self.config.consul.base_url,
                "max_stale": watch.max_stale,
                "requests": requests,
                "errors": errors,
                "consecutive_failures": max((view.failures for view in views), default=0),
                "watches": len(views),
            },
            "watch": {name: getattr(watch, name) for name in ("block_wait", "min_interval", "backoff", "max_backoff")},
            "templates": templates_status,
        }
