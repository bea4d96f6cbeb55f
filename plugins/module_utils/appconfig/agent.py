# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's app configuration agent, run inside the registrator daemon (layout.py is the contract).

It watches P app-config/ with blocking queries. Each valid Definition gets a
renderer Runner of its own, reading Consul with the app's token (a template
reads only what the app may read), writing under BASE_DIR/<service>/; each
definition's Status goes to P app-config-status/<node>/<service>. A change
rendered after the files link exists signals the service's local containers,
or queues a restart one at a time (restart.py). A definition that goes away
stops its Runner and loses its status; its directory goes once no container
of the service is left on the node.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import os
import shutil
import threading
import time

from ..daemon import logs
from ..daemon.consul import ConsulClient, ConsulError, kv_path
from ..daemon.retry import backoff_delay
from ..registrator.docker_source import DockerError, DockerSource
from ..renderer import render as files
from ..renderer.config import Config as RendererConfig
from ..renderer.config import TemplateConfig, Wait, WatchSettings
from ..renderer.runner import Runner
from . import layout
from .restart import NodeContainers, Restarter

DEFINITION_ERROR = "definition"  # the template name a bad definition's error is published under
FILE_MODE = 0o644
# A change reaches the instances within seconds: render 100 ms after the last change, 500 ms after the first.
RENDER_WAIT = Wait(0.1, 0.5)
BLOCK_WAIT = 15.0  # the definitions' blocking query; also how often removed services' directories are retried
VIEW_FAILURES = 2  # failed reads in a row of a template's dependency before its status names it


def service_of(key: str, kv_prefix: str) -> str | None:
    """The service a key under P app-config/ names; None for a nested key (never ours)."""
    rest = key[len(kv_prefix + layout.DEFINITIONS) :]
    return rest if rest and "/" not in rest else None


def runner_config(settings, definition, base: str, log_level: str) -> RendererConfig:
    """The renderer configuration of one definition: the app's token, inline templates, its state directory."""
    consul = dataclasses.replace(settings, token=definition.token, token_file="")
    templates = [
        TemplateConfig(
            name=template.name,
            contents=template.contents,
            destination=os.path.join(
                layout.rendered_dir(definition.service, definition.directory_index(template), base), template.file
            ),
            mode=FILE_MODE,
            max_drop=template.max_drop,
            error_on_missing_key=True,
            missing_consul_key="wait",
            # An app's team wrote it: no way out of Jinja2 into the root daemon, nor onto the host.
            sandboxed=True,
            variables={"prefix": template.prefix},
        )
        for template in definition.templates
    ]
    return RendererConfig(
        consul=consul,
        wait=RENDER_WAIT,
        watch=WatchSettings(),
        templates=templates,
        log_level=log_level,
        state_dir=layout.state_dir(definition.service, base),
    )


def template_errors(snapshot: dict, failing_reads: dict) -> tuple:
    """(name, message) pairs, sorted: each template's last error, else the reads it keeps failing to make."""
    errors = {}
    for template in snapshot["templates"]:
        message = template["last_error"] or failing_reads.get(template["name"])
        if message:
            errors[template["name"]] = message[: layout.MAX_ERROR_TEXT]
    return tuple(sorted(errors.items()))


def build_status(node: str, service: str, rendered: bool, key_index, errors: tuple, now: float) -> layout.Status:
    return layout.Status(node=node, service=service, rendered=rendered, key_index=key_index, errors=errors, updated=now)


def same_status(one, other) -> bool:
    """Equal but for the time it was made."""
    return other is not None and dataclasses.replace(one, updated=0) == dataclasses.replace(other, updated=0)


def definition_error_status(node: str, service: str, reason: str, now: float) -> layout.Status:
    return build_status(node, service, False, None, ((DEFINITION_ERROR, reason[: layout.MAX_ERROR_TEXT]),), now)


def link_files(service_dir: str) -> None:
    """files -> rendered, made whole: a link under a temporary name, renamed over the final one."""
    temporary = os.path.join(service_dir, f".files-{os.getpid()}")
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.symlink("rendered", temporary)
    os.replace(temporary, os.path.join(service_dir, "files"))


def make_dir(path: str, mode: int) -> None:
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)


def prepare(definition, base: str) -> None:
    """The service's directories and token file, before its Runner starts."""
    service = definition.service
    make_dir(layout.service_dir(service, base), 0o755)
    for index in range(len(definition.directories)):
        make_dir(layout.rendered_dir(service, index, base), 0o755)
    make_dir(layout.state_dir(service, base), 0o700)
    token_dir = layout.token_dir(service, base)
    make_dir(token_dir, 0o755)
    token_file = os.path.join(token_dir, layout.TOKEN_FILE)
    # The renderer's own whole-file write: beside it, synced, then renamed over it.
    files.commit(files.write_candidate(token_file, definition.token.encode("ascii"), FILE_MODE), token_file)


class ServiceRender:
    """One definition on this node: its Runner on a thread, its files link, its published status."""

    def __init__(self, agent, definition, raw: bytes):
        self.agent = agent
        self.definition = definition
        self.raw = raw
        self.service_dir = layout.service_dir(definition.service, agent.base)
        config = runner_config(agent.config.consul, definition, agent.base, agent.config.log_level)
        self.destinations = [template.destination for template in config.templates]
        self.runner = Runner(config, on_change=self._changed)
        self.thread = threading.Thread(
            target=self.runner.run, args=(self._cycle,), name=definition.service, daemon=True
        )
        self.changed = False  # a render changed a file since the status was last published
        self.key_index = None
        self.published = None

    @property
    def linked(self) -> bool:
        return os.path.islink(os.path.join(self.service_dir, "files"))

    def _changed(self, state) -> None:
        self.changed = True
        if not self.linked:
            return  # no container can run before the files link exists: none to tell
        template = next(t for t in self.definition.templates if t.name == state.config.name)
        self.agent.apply_change(self.definition, template)

    def _cycle(self) -> None:
        if not self.linked and all(os.path.isfile(path) for path in self.destinations):
            link_files(self.service_dir)
            logs.event(logging.INFO, "app config rendered, files linked", service=self.definition.service)
            self.changed = True
        rendered = self.linked
        if rendered and (self.changed or self.key_index is None):
            self.key_index = self._key_index()
        errors = template_errors(self.runner.snapshot(), self._failing_reads())
        status = build_status(self.agent.node, self.definition.service, rendered, self.key_index, errors, time.time())
        due = self.changed or not same_status(status, self.published)
        if due and self.agent.publish(status):
            self.published, self.changed = status, False

    def _key_index(self):
        """The highest ModifyIndex under the templates' prefixes, read with the app's token; kept on an error."""
        highest = 0
        try:
            for prefix in sorted({template.prefix for template in self.definition.templates}):
                for entry in self.runner.client.kv_read_tree(prefix):
                    highest = max(highest, int(entry.get("ModifyIndex") or 0))
        except ConsulError as error:
            logs.event(
                logging.WARNING, "cannot read the config's key index", service=self.definition.service, error=error
            )
            return self.key_index
        return highest

    def _failing_reads(self) -> dict:
        """Template name -> the reads of it that keep failing (a key the app's token may not read, Consul away)."""
        failing = {}
        views = dict(self.runner.views)
        for state in list(self.runner.states):
            bad = [str(dep) for dep in state.dependencies if getattr(views.get(dep), "failures", 0) >= VIEW_FAILURES]
            if bad:
                failing[state.config.name] = (
                    f"cannot read {', '.join(bad)} with the app's token (refused or Consul unreachable; retrying)"
                )
        return failing

    def start(self) -> None:
        prepare(self.definition, self.agent.base)
        self.thread.start()

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(timeout=10)


class AppConfigAgent:
    def __init__(self, config, client=None, containers=None, restarter=None):
        self.config = config
        self.node = config.node
        self.base = config.app_config_dir
        self.client = client or ConsulClient(config.consul)
        self.containers = containers or NodeContainers(DockerSource(config.docker_url))
        self.restarter = restarter or Restarter(
            self.client, NodeContainers(DockerSource(config.docker_url)), config.kv_prefix, config.node
        )
        self.block_wait = BLOCK_WAIT
        self.renders = {}  # service -> ServiceRender
        self.reported = {}  # key -> the bad value already logged
        self.refused = set()  # services whose status says their definition is bad
        self.leftovers = set()  # services whose directory is to go once no container of theirs is left
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="app-config definitions", daemon=True)

    @property
    def prefix(self) -> str:
        return self.config.kv_prefix + layout.DEFINITIONS

    def start(self) -> None:
        make_dir(self.base, 0o700)
        self.restarter.start()
        self._thread.start()
        logs.event(logging.INFO, "app config agent started", directory=self.base)

    def stop(self) -> None:
        self._stop.set()
        self.restarter.stop()
        for render in list(self.renders.values()):
            render.stop()
        self._thread.join(timeout=5)

    # -- definitions -------------------------------------------------------------------
    def _watch(self) -> None:
        index, failures, first = 0, 0, True
        while not self._stop.is_set():
            try:
                found, index = self._read_definitions(index)
            except ConsulError as error:
                failures += 1
                delay = backoff_delay(failures, self.config.backoff, self.config.max_backoff)
                logs.event(logging.WARNING, "cannot read app config definitions, retrying", error=error)
                index = 0
                self._stop.wait(delay)
                continue
            failures = 0
            if self._stop.is_set():
                return
            self.apply(found)
            if first:
                self.leftovers.update(self._unknown_directories(found))
                first = False
            self.clean_leftovers()

    def _read_definitions(self, index: int) -> tuple:
        """({service: raw definition}, the index to block on next)."""
        params = {"recurse": "true"}
        if index:
            params.update(index=str(index), wait=f"{int(self.block_wait)}s")
        timeout = self.block_wait * 17 / 16 + self.client.settings.timeout
        answer = self.client.get(kv_path(self.prefix), params, timeout=timeout)
        found = {}
        for entry in answer.json() or []:
            service = service_of(entry["Key"], self.config.kv_prefix)
            value = base64.b64decode(entry["Value"]) if entry.get("Value") else b""
            if service is None:
                self._report(entry["Key"], value, "not a service's definition (a nested key)")
            else:
                found[service] = value
        return found, max(1, answer.index)

    def apply(self, found: dict) -> None:
        """Runs a Runner for each valid definition found, and only for those."""
        for service in [service for service in self.renders if found.get(service) != self.renders[service].raw]:
            self._remove(service, gone=service not in found)
        for service in sorted(self.refused - set(found)):
            self.refused.discard(service)
            self.reported.pop(layout.definition_key(self.config.kv_prefix, service), None)
            self.delete_status(service)
            self.leftovers.add(service)
        for service, raw in sorted(found.items()):
            if service in self.renders:
                continue
            try:
                definition = layout.parse_definition(raw, service)
            except layout.LayoutError as error:
                self._refuse(service, raw, str(error))
                continue
            self.reported.pop(layout.definition_key(self.config.kv_prefix, service), None)
            self.refused.discard(service)
            self.leftovers.discard(service)
            render = ServiceRender(self, definition, raw)
            try:
                render.start()
            except OSError as error:
                logs.event(logging.ERROR, "cannot prepare the app config directory", service=service, error=error)
                continue
            self.renders[service] = render
            logs.event(logging.INFO, "rendering app config", service=service, templates=len(definition.templates))

    def _report(self, key: str, raw: bytes, reason: str) -> bool:
        """Logs a bad definition once per value; True when this value is new."""
        if self.reported.get(key) == raw:
            return False
        self.reported[key] = raw
        logs.event(logging.ERROR, "app config definition refused, not rendered", key=key, error=reason)
        return True

    def _refuse(self, service: str, raw: bytes, reason: str) -> None:
        try:
            key = layout.definition_key(self.config.kv_prefix, service)
        except layout.LayoutError:
            self._report(self.prefix + service, raw, reason)
            return
        self.refused.add(service)
        if self._report(key, raw, reason):
            self.publish(definition_error_status(self.node, service, reason, time.time()))

    def _remove(self, service: str, gone: bool) -> None:
        self.renders.pop(service).stop()
        if gone:
            self.delete_status(service)
            self.leftovers.add(service)
            logs.event(logging.INFO, "app config definition gone, renderer stopped", service=service)

    # -- the node's directories --------------------------------------------------------
    def _unknown_directories(self, found: dict) -> set:
        """Service directories under the base that no definition names (an earlier run's)."""
        unknown = set()
        for name in os.listdir(self.base):
            try:
                layout.parse_service(name)
            except layout.LayoutError:
                continue  # nothing this agent made: left alone
            if name not in found and os.path.isdir(os.path.join(self.base, name)):
                unknown.add(name)
        return unknown

    def clean_leftovers(self) -> None:
        for service in sorted(self.leftovers):
            if service in self.renders:
                self.leftovers.discard(service)
                continue
            try:
                if self.containers.of_service(service, running=False):
                    continue  # a container of it may still start, or be started again, with its mounts
            except DockerError as error:
                logs.event(
                    logging.WARNING, "cannot list containers, directory kept for now", service=service, error=error
                )
                continue
            shutil.rmtree(layout.service_dir(service, self.base), ignore_errors=True)
            self.leftovers.discard(service)
            logs.event(logging.INFO, "app config directory removed", service=service)

    # -- what the renders call ---------------------------------------------------------
    def publish(self, status) -> bool:
        key = layout.status_key(self.config.kv_prefix, self.node, status.service)
        try:
            stored = self.client.request("PUT", kv_path(key), body=status.to_json()).json() is True
        except ConsulError as error:
            logs.event(logging.WARNING, "cannot publish app config status", key=key, error=error)
            return False
        if not stored:
            logs.event(logging.WARNING, "Consul did not store the app config status", key=key)
            return False
        logs.event(logging.DEBUG, "app config status published", key=key, ready=status.ready)
        return True

    def delete_status(self, service: str) -> None:
        key = layout.status_key(self.config.kv_prefix, self.node, service)
        try:
            self.client.kv_delete(key)
        except ConsulError as error:
            logs.event(logging.WARNING, "cannot delete app config status", key=key, error=error)

    def apply_change(self, definition, template) -> None:
        """A rendered change reaches the service's containers on this node: a signal now, or a queued restart."""
        if template.on_change == "restart":
            self.restarter.request(definition)
            return
        try:
            running = self.containers.of_service(definition.service)
            # Docker's answer per container: one that stopped meanwhile is not counted as told.
            told = sum(self.containers.signal(summary["Id"], template.signal) for summary in running)
        except DockerError as error:
            logs.event(logging.ERROR, "cannot signal the config change", service=definition.service, error=error)
            return
        logs.event(
            logging.INFO,
            "config change signalled",
            service=definition.service,
            template=template.name,
            signal=template.signal,
            containers=told,
            gone=len(running) - told,
        )
