# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registrator's loop: one Consul session per node, Docker events, periodic resync, back-off.

Three threads, one writer:
- the session keeper creates the node's session (TTL = session_ttl / 2,
  Behavior delete, LockDelay 0s, default node checks), or takes over the one
  a run restarted by systemd handed over (handover.py), and renews it every
  third of its TTL; when Consul says the session is gone it creates a new one
  and asks for a resync;
- the event follower reads the engine's event stream and queues each event;
  when the stream breaks (the engine restarted) it reconnects with back-off and
  asks for a resync;
- the main loop (the only one that writes keys) handles the queued events in
  order and resyncs when asked to and every resync_interval.

On kill, stop and die an instance is deleted at once: kill comes first when
Docker or Swarm stops a task, so routers drop the instance before the
container goes. A kill with a signal apps use for control (HUP, USR1, USR2,
WINCH, URG) is not a stop; if it kills the container, its die event follows.

Drain on stop (see drain.py): a SIGURG kill of a container labelled
org.dockyard.drain_timeout is a stop the app does not see yet. The instance is
withdrawn at once and kept out; the drain goes on a due-list that the main
loop services, which sends the app's real stop signal once the window has
passed. The due-list is saved in state_dir, so a restarted daemon keeps the
drained containers out and still sends their signals.

Readiness before traffic (see readiness.py): a container labelled
org.dockyard.http_check is registered only once one GET of its check, sent to
the address and port of its instance, has passed. Until then it waits on a
list that the main loop services: each due probe runs in a thread of its own
and queues its answer, and the main loop registers the container. A
container registered (or found ready) is not probed again while it runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import queue
import signal
import threading
import time

from ..daemon import logs, routing
from ..daemon.consul import ConsulClient, ConsulError
from ..daemon.retry import backoff_delay
from . import drain, handover, instances, readiness
from .config import go_duration
from .docker_source import DockerError, DockerSource

CONTROL_SIGNALS = frozenset(
    str(int(getattr(signal, name))) for name in ("SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGURG")
)
WITHDRAW_ACTIONS = ("kill", "stop", "die")


class Registrator:
    def __init__(
        self,
        config,
        client=None,
        docker_source=None,
        event_source=None,
        drain_store=None,
        clock=time.time,
        probe=readiness.probe,
        handover_store=None,
        restart_pending=handover.restart_pending,
    ):
        self.config = config
        self.client = client or ConsulClient(config.consul)
        # Two connections: the event stream blocks one of them for good.
        self.docker = docker_source or DockerSource(config.docker_url)
        self.event_docker = event_source or DockerSource(config.docker_url)
        self.queue = queue.Queue()
        self.session = None
        self.registered = {}  # container ID -> key written under our session
        self.stopping = set()  # IDs of containers told to stop: not registered again until they start
        self.drains = drain.DueList()  # the stopping containers whose real stop signal is still to be sent
        self.drain_store = drain_store or drain.DrainStore(config.state_dir)
        self.clock = clock  # wall clock: drain deadlines are saved, and must mean the same after a restart
        self.waiting = readiness.WaitList()  # containers with an HTTP check that has not passed yet
        self.ready = set()  # IDs of containers whose HTTP check passed since they last started
        self.probe = probe
        self.handover_store = handover_store or handover.HandoverStore(config.state_dir)
        self.restart_pending = restart_pending  # at the stop: is systemd restarting us? Then hand the session over
        self._offered = None  # the session an earlier run handed over, until the keeper renewed it or found it gone
        self._reported = set()  # (container ID, message) already logged as errors
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stream = None
        self._threads = []
        self.resync_due = math.inf  # asked for by the keeper (session ready) and the follower (stream open)
        self.resync_failures = 0

    # -- control -----------------------------------------------------------------------
    def stop(self) -> None:
        """Asks the loop to end (safe from a signal handler); run() then destroys the session and returns."""
        self._stop.set()
        self.queue.put(None)

    @property
    def stopping_now(self) -> bool:
        return self._stop.is_set()

    def request_resync(self, reason: str) -> None:
        self.queue.put(("resync", reason))

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, self.config.backoff, self.config.max_backoff)

    # -- the session keeper ------------------------------------------------------------
    def _keep_session(self) -> None:
        config = self.config
        ttl = go_duration(config.consul_ttl)
        failures = 0
        predecessors = True  # an earlier run's sessions are still to be replaced
        while not self._stop.is_set():
            wait = config.renew_interval
            try:
                if self.session is None:
                    session = self._take_over()
                    if session is None:
                        session = self.client.session_create(config.session_name, ttl)
                        logs.event(logging.INFO, "session created", session=session, ttl=ttl, node=config.node)
                    if predecessors:
                        predecessors = not self._replace_predecessors(session)
                    with self._lock:
                        self.session = session
                    self.request_resync("session ready")
                elif not self.client.session_renew(self.session):
                    logs.event(
                        logging.WARNING,
                        "session invalidated, its instances are gone; creating a new one",
                        session=self.session,
                    )
                    with self._lock:
                        self.session = None
                    wait = 0
                elif predecessors and self._replace_predecessors(self.session):
                    predecessors = False
                    self.request_resync("an earlier run's sessions replaced")
                if failures:
                    logs.event(logging.INFO, "consul answers again", after_failures=failures)
                failures = 0
            except ConsulError as error:
                failures += 1
                wait = self._backoff(failures)
                level = logging.ERROR if error.status in (401, 403) else logging.WARNING
                logs.event(
                    level,
                    "session renewal failed, retrying" if self.session else "session creation failed, retrying",
                    attempt=failures,
                    retry_in=f"{wait:.2f}s",
                    error=error,
                )
            self._stop.wait(wait)

    def _take_over(self):
        """The session the previous run handed over, renewed (its instances never left Consul); None when there is
        none or it has ended. Raises ConsulError, keeping the offer for the keeper's next try."""
        offered = self._offered
        if offered is None:
            return None
        renewed = self.client.session_renew(offered)
        self._offered = None
        if not renewed:
            logs.event(logging.INFO, "the session the previous run handed over has ended; creating a new one")
            return None
        logs.event(logging.INFO, "session taken over from the previous run, its instances kept", session=offered)
        return offered

    def _read_offer(self) -> None:
        try:
            self._offered = self.handover_store.take(self.config.session_name, self.config.kv_prefix)
        except handover.HandoverError as error:
            logs.event(logging.WARNING, "session handover ignored", error=error)

    def _replace_predecessors(self, session: str) -> bool:
        """Destroys sessions of an earlier run on this node (a crash or a hard kill), so their keys go now.

        This is also the upgrade path from the old key layout (<prefix>instances/<app>/<node>/<task>): every
        key an earlier run wrote, in either layout, is held by its session (Behavior delete), so Consul deletes
        them with it, and the node's token needs no right outside <prefix>instances/<node>/ to clean up.
        False when the sessions could not be listed (the keeper tries again).
        """
        try:
            found = self.client.session_list()
        except ConsulError as error:
            logs.event(logging.WARNING, "cannot list sessions to replace an earlier run's, will retry", error=error)
            return False
        for entry in found:
            if entry.get("Name") == self.config.session_name and entry.get("ID") != session:
                try:
                    self.client.session_destroy(entry["ID"])
                    logs.event(logging.INFO, "destroyed the session of an earlier run", session=entry["ID"])
                except ConsulError as error:
                    logs.event(
                        logging.WARNING, "cannot destroy an earlier run's session", session=entry["ID"], error=error
                    )
        return True

    # -- the event follower ------------------------------------------------------------
    def _follow_events(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                stream = self.event_docker.events()
            except DockerError as error:
                failures += 1
                delay = self._backoff(failures)
                logs.event(
                    logging.WARNING, "docker engine unreachable, retrying", retry_in=f"{delay:.2f}s", error=error
                )
                self._stop.wait(delay)
                continue
            self._stream = stream
            if self._stop.is_set():
                break
            if failures:
                logs.event(logging.INFO, "docker engine answers again", after_failures=failures)
            failures = 0
            # The stream is open before the resync starts, so no event falls between the two.
            self.request_resync("event stream open")
            try:
                for event in stream:
                    self.queue.put(("event", event))
            except Exception as error:  # the SDK raises requests/urllib3/socket errors when the engine goes
                if not self._stop.is_set():
                    logs.event(logging.WARNING, "docker event stream broke", error=error)
            self._stream = None
            self.event_docker.reset()
            if not self._stop.is_set():
                failures += 1
                delay = self._backoff(failures)
                logs.event(logging.WARNING, "docker event stream ended, reconnecting", retry_in=f"{delay:.2f}s")
                self._stop.wait(delay)

    # -- instances ---------------------------------------------------------------------
    def _instance(self, attrs: dict):
        """(instance, its HTTP check or None), or None (not an app task, or skipped with one logged error)."""
        try:
            instance = instances.instance_from(attrs, self.config.node, self.config.address)
            return None if instance is None else (instance, readiness.check_of(attrs))
        except instances.Skip as skip:
            mark = (attrs.get("Id"), str(skip))
            level = logging.DEBUG if mark in self._reported else logging.ERROR
            self._reported.add(mark)
            logs.event(level, "container skipped", reason=skip)
            return None

    def _put(self, container_id: str, instance) -> str:
        """Writes one instance under our session: written, held (by another session), denied, failed or idle."""
        session = self.session
        if session is None:
            return "idle"  # the keeper resyncs once it has a session
        key = instance.key(self.config.kv_prefix)
        try:
            instance = routing.validated(instance)  # the routers' gate, at the source: nothing they refuse is written
        except routing.RouteError as error:
            logs.event(logging.ERROR, "instance refused, not written", container=container_id[:12], error=error)
            return "refused"
        try:
            acquired = self.client.kv_acquire(key, instance.value(), session)
        except ConsulError as error:
            if error.status is not None and 400 <= error.status < 500:
                logs.event(logging.ERROR, "cannot write instance", key=key, container=container_id[:12], error=error)
                return "denied"
            logs.event(logging.WARNING, "cannot write instance, will resync", key=key, error=error)
            return "failed"
        if not acquired:
            logs.event(logging.WARNING, "instance key held by another session, not written", key=key)
            return "held"
        self.registered[container_id] = key
        logs.event(
            logging.INFO,
            "registered",
            key=key,
            container=container_id[:12],
            port=instance.port,
            version=instance.version,
            track=instance.track,
        )
        return "written"

    def _delete(self, key: str, reason: str) -> str:
        try:
            self.client.kv_delete(key)
        except ConsulError as error:
            if error.status is not None and 400 <= error.status < 500:
                logs.event(logging.ERROR, "cannot delete instance", key=key, error=error)
                return "denied"
            logs.event(logging.WARNING, "cannot delete instance, will resync", key=key, error=error)
            return "failed"
        logs.event(logging.INFO, "deregistered", key=key, reason=reason)
        return "deleted"

    def _retry_soon(self) -> None:
        self.resync_due = min(self.resync_due, time.monotonic() + self._backoff(self.resync_failures + 1))

    # -- events ------------------------------------------------------------------------
    def handle_event(self, event: dict) -> None:
        action = event.get("Action") or event.get("status") or ""
        actor = event.get("Actor") or {}
        container_id = event.get("id") or actor.get("ID") or ""
        attributes = actor.get("Attributes") or {}
        if not container_id or not instances.is_app(attributes):
            return
        if action == "kill" and attributes.get("signal") == str(drain.DRAIN_SIGNAL) and drain.is_drained(attributes):
            self._start_drain(container_id, attributes)
            return
        if action == "kill" and attributes.get("signal") in CONTROL_SIGNALS:
            logs.event(logging.DEBUG, "control signal, instance kept", container=container_id[:12])
            return
        if action in WITHDRAW_ACTIONS:
            if action == "die":
                self.stopping.discard(container_id)
                self._end_drain(container_id)
            else:
                self.stopping.add(container_id)
            self._withdraw(container_id, action)
        elif action == "start":
            self.stopping.discard(container_id)
            self._register(container_id)
        elif action.startswith("health_status"):
            status = action.partition(":")[2].strip()
            if status == "healthy":
                self._register(container_id)
            elif status == "unhealthy":
                self._withdraw(container_id, "unhealthy")

    def _withdraw(self, container_id: str, reason: str) -> None:
        # Back in Consul only through a passing probe: it may have been stopped, or have restarted.
        self.ready.discard(container_id)
        cancelled = self.waiting.cancel(container_id)
        if cancelled is not None:
            logs.event(logging.DEBUG, "readiness probing cancelled", container=cancelled.name, reason=reason)
        key = self.registered.get(container_id)
        if key is None:
            return
        outcome = self._delete(key, reason)
        if outcome == "failed":
            self._retry_soon()
        else:
            self.registered.pop(container_id, None)

    # -- drains ------------------------------------------------------------------------
    def _start_drain(self, container_id: str, attributes: dict) -> None:
        if container_id in self.drains:
            logs.event(logging.DEBUG, "draining already, deadline kept", container=container_id[:12])
            return
        self.stopping.add(container_id)
        self._withdraw(container_id, "drain")
        name = attributes.get("name") or container_id[:12]
        window, stop_signal, problems = drain.settings_of(attributes)
        for problem in problems:
            logs.event(
                logging.ERROR, "drain label refused, stopping the container at once", container=name, error=problem
            )
        due = self.clock() + window
        self.drains.add(drain.Drain(container_id, name, due, stop_signal))
        self._save_drains()
        logs.event(
            logging.INFO,
            "withdrawn for drain",
            container=name,
            drain_timeout=f"{window:g}s",
            stop_signal=stop_signal,
        )

    def _end_drain(self, container_id: str) -> None:
        ended = self.drains.cancel(container_id)
        if ended is not None:
            self._save_drains()
            logs.event(logging.INFO, "drain ended: the container stopped before its window", container=ended.name)

    def send_due_signals(self) -> None:
        """Sends the real stop signal of every drain whose window has passed (the main loop's job)."""
        due = self.drains.pop_due(self.clock())
        for entry in due:
            self._send_stop_signal(entry)
        if due:
            self._save_drains()

    def _send_stop_signal(self, entry) -> None:
        try:
            sent = self.docker.kill(entry.container, entry.signal)
        except DockerError as error:
            # Not given up: Docker's SIGKILL at the service's stop_grace_period would end the app unannounced.
            attempts = entry.attempts + 1
            retry_in = self._backoff(attempts)
            self.drains.add(dataclasses.replace(entry, due=self.clock() + retry_in, attempts=attempts))
            logs.event(
                logging.WARNING,
                "cannot send the stop signal, retrying",
                container=entry.name,
                stop_signal=entry.signal,
                retry_in=f"{retry_in:.2f}s",
                error=error,
            )
            return
        if sent:
            logs.event(logging.INFO, "drained, stop signal sent", container=entry.name, stop_signal=entry.signal)
        else:
            logs.event(logging.INFO, "drain ended: the container is gone", container=entry.name)

    def _save_drains(self) -> None:
        try:
            self.drain_store.save(self.drains.drains())
        except OSError as error:
            logs.event(
                logging.WARNING,
                "cannot save the drains in progress; a restart now would forget them",
                path=self.drain_store.path,
                error=error,
            )

    def _resume_drains(self) -> None:
        """Takes up the drains an earlier run left: their containers stay out, their signals are still sent."""
        try:
            found = self.drain_store.load()
        except (drain.StateError, OSError) as error:
            logs.event(logging.ERROR, "cannot read the drains of an earlier run, ignored", error=error)
            return
        for entry in found:
            self.drains.add(entry)
            self.stopping.add(entry.container)
            logs.event(
                logging.INFO,
                "drain resumed after a restart",
                container=entry.name,
                stop_signal=entry.signal,
                due_in=f"{max(0.0, entry.due - self.clock()):.1f}s",
            )

    def _register(self, container_id: str) -> None:
        if container_id in self.stopping:
            return
        try:
            attrs = self.docker.inspect(container_id)
        except DockerError as error:
            logs.event(
                logging.WARNING, "cannot inspect container, will resync", container=container_id[:12], error=error
            )
            self._retry_soon()
            return
        if attrs is None or not instances.serving(attrs):
            return
        found = self._instance(attrs)
        if found is None:
            return
        instance, check = found
        if check is not None and container_id not in self.ready:
            self._await(container_id, attrs, instance, check)
        elif self._put(container_id, instance) == "failed":
            self._retry_soon()

    # -- readiness ---------------------------------------------------------------------
    def _await(self, container_id: str, attrs: dict, instance, check) -> None:
        """Puts the container on the wait list (its first probe due now), unless it waits already."""
        now = time.monotonic()
        name = instances.name_of(attrs)
        if self.waiting.add(readiness.Waiting(container_id, name, instance, check, since=now, due=now)):
            logs.event(logging.DEBUG, "waiting for its health check", container=name, path=check.path)

    def start_due_probes(self) -> int:
        """Starts the probes that are due (the main loop's job), each in a thread of its own: a slow app delays
        nothing else. Their answers come back through the queue. Returns how many were started."""
        due = self.waiting.take_due(time.monotonic())
        for entry in due:
            threading.Thread(target=self._probe, args=(entry,), name=f"probe {entry.name}", daemon=True).start()
        return len(due)

    def _probe(self, entry) -> None:
        try:
            passed, seen = self.probe(entry.instance.addr, entry.instance.port, entry.check)
        except Exception as error:  # a probe thread that died would leave its container waiting for good
            passed, seen = False, f"probe failed: {error!r}"
        self.queue.put(("probe", (entry, passed, seen)))

    def probe_answered(self, entry, passed: bool, seen: str) -> None:
        """Registers a container whose probe passed; schedules the next probe of one that failed."""
        now = time.monotonic()
        outcome = self.waiting.answered(entry, passed, now)
        if outcome == "waiting":
            logs.event(
                logging.DEBUG,
                "not ready yet",
                container=entry.name,
                probe=entry.probes,
                seen=seen,
                retry_in=f"{entry.check.probe_interval:g}s",
            )
        elif outcome == "ready":
            self.ready.add(entry.container)
            logs.event(
                logging.INFO,
                "ready",
                container=entry.name,
                probes=entry.probes,
                after=f"{now - entry.since:.1f}s",
                seen=seen,
            )
            if self._put(entry.container, entry.instance) == "failed":
                self._retry_soon()

    # -- resync ------------------------------------------------------------------------
    def resync(self) -> bool:
        """Makes this node's keys match what runs; False when Docker or Consul could not be asked."""
        session = self.session
        if session is None:
            return False
        try:
            running = self.docker.running()
        except DockerError as error:
            logs.event(logging.WARNING, "resync failed", error=error)
            return False
        desired, owners, running_ids, unproven = {}, {}, set(), {}
        for attrs in running:
            container_id = attrs.get("Id", "")
            running_ids.add(container_id)
            if container_id in self.stopping or not instances.serving(attrs):
                continue
            found = self._instance(attrs)
            if found is None:
                continue
            instance, check = found
            key = instance.key(self.config.kv_prefix)
            if check is not None and container_id not in self.ready:
                unproven[container_id] = (key, attrs, instance, check)
                continue
            desired[key], owners[key] = instance, container_id
        self.stopping &= running_ids
        self.ready &= running_ids
        gone = self.drains.keep_only(running_ids)  # their die events fell while the engine or the stream was away
        for entry in gone:
            logs.event(logging.INFO, "drain ended: the container is gone", container=entry.name)
        if gone:
            self._save_drains()
        self._reported = {mark for mark in self._reported if mark[0] in running_ids}
        try:
            # Only this node's prefix: all its token may read or write.
            current = instances.owned(
                self.client.kv_recurse(self.config.instances_prefix), self.config.kv_prefix, self.config.node
            )
        except ConsulError as error:
            logs.event(logging.WARNING, "resync failed", error=error)
            return False
        awaiting = set()
        for container_id, (key, attrs, instance, check) in unproven.items():
            if key in current:
                # Registered by this node before this daemon started, hence after a passing probe: kept as it
                # is, so that a restarted registrator takes no serving instance out of the routers.
                self.waiting.cancel(container_id)
                self.ready.add(container_id)
                desired[key], owners[key] = instance, container_id
            else:
                awaiting.add(container_id)
                self._await(container_id, attrs, instance, check)
        # Gone, stopping or no longer healthy, with the events that said so missed: no longer probed.
        self.waiting.keep_only(awaiting)
        plan = instances.plan(desired, current, session)
        self.registered = {owners[key]: key for key in desired if key in current and key not in plan.puts}
        outcomes = []
        for key in plan.deletes:
            outcomes.append(self._delete(key, "resync: not running here"))
        for key in plan.puts:
            outcomes.append(self._put(owners[key], desired[key]))
        logs.event(
            logging.INFO if plan else logging.DEBUG,
            "resynced",
            running=len(running),
            desired=len(desired),
            waiting=len(awaiting),
            written=outcomes.count("written"),
            deleted=outcomes.count("deleted"),
            errors=len(outcomes) - outcomes.count("written") - outcomes.count("deleted"),
        )
        return "failed" not in outcomes

    def _resync_now(self) -> None:
        if self.session is None:
            self.resync_due = math.inf  # the keeper asks again once it has a session
            return
        if self.resync():
            self.resync_failures = 0
            self.resync_due = time.monotonic() + self.config.resync_interval
        else:
            self.resync_failures += 1
            self.resync_due = time.monotonic() + self._backoff(self.resync_failures)

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> None:
        """The daemon: returns after stop(), once the session is destroyed (so every instance goes at once), or
        handed over to the next run when systemd is restarting the daemon."""
        config = self.config
        logs.event(
            logging.INFO,
            "registrator started",
            node=config.node,
            address=config.address,
            consul=config.consul.base_url,
            docker=config.docker_url,
            session_ttl=f"{config.session_ttl:g}s",
        )
        self._resume_drains()
        self._read_offer()
        for target, name in ((self._keep_session, "session keeper"), (self._follow_events, "docker events")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        try:
            while not self._stop.is_set():
                timeout = min(
                    1.0,
                    max(0.0, self.resync_due - time.monotonic()),
                    max(0.0, self.drains.next_due() - self.clock()),
                    max(0.0, self.waiting.next_due() - time.monotonic()),
                )
                try:
                    item = self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
                except queue.Empty:
                    item = None
                if self._stop.is_set():
                    break
                if item is not None:
                    kind, payload = item
                    if kind == "event":
                        self.handle_event(payload)
                    elif kind == "probe":
                        self.probe_answered(*payload)
                    else:
                        logs.event(logging.DEBUG, "resync requested", reason=payload)
                        self.resync_due = time.monotonic()
                if time.monotonic() >= self.resync_due:
                    self._resync_now()
                self.send_due_signals()
                self.start_due_probes()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        stream = self._stream
        if stream is not None:
            # A stream of a dead engine may fail to close; it is abandoned anyway.
            with contextlib.suppress(Exception):
                stream.close()
        for thread in self._threads:
            if thread.name == "session keeper":
                thread.join(self.config.consul.timeout + 1)
        session = self.session
        if session is not None and self.restart_pending():
            try:
                self.handover_store.save(session, self.config.session_name, self.config.kv_prefix)
                logs.event(
                    logging.INFO,
                    "restarting: session handed over to the next run, this node's instances stay",
                    session=session,
                )
                session = self.session = None
            except OSError as error:
                logs.event(logging.WARNING, "cannot hand the session over; destroying it", error=error)
        if session is not None:
            try:
                self.client.session_destroy(session, timeout=5)
                logs.event(logging.INFO, "session destroyed, this node's instances withdrawn", session=session)
            except ConsulError as error:
                logs.event(
                    logging.WARNING,
                    "cannot destroy the session; its instances go within session_ttl",
                    session=session,
                    error=error,
                )
            self.session = None
        logs.event(logging.INFO, "registrator stopped")
