# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The renderer's command line: python3 -m dockyard.renderer.cli --config FILE [--mode MODE] [-- CHILD ARGS].

Modes:
  daemon    watch Consul and render every template until SIGTERM/SIGINT; SIGHUP reloads the whole configuration
  once      render every template once; exit 1 if any failed
  dry       render every template once to stdout; write nothing, run nothing
  exec      render, then run a child (exec.command or the arguments after --); re-render and signal
            (or restart) it on change; forward signals to it; exit with its exit code
  validate  check the configuration and compile every template; exit 1 with the reason if not valid
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from ..daemon import logs
from ..daemon.config import LOG_LEVELS
from ..daemon.consul import check_files
from . import config as configuration
from .child import Child
from .control import ControlServer
from .render import remove_stale_candidates
from .runner import Runner
from .status import StatusServer
from .template import TemplateError
from .template import load as load_template

FORWARDED = ("SIGHUP", "SIGINT", "SIGTERM", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH")


def _arguments(argv):
    parser = argparse.ArgumentParser(prog="dockyard-renderer", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--config", required=True, help="JSON configuration file")
    parser.add_argument("--mode", choices=("daemon", "once", "dry", "exec", "validate"), default="daemon")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="overrides log_level")
    parser.add_argument("--status-port", type=int, help="overrides status.port (0 picks a free port)")
    parser.add_argument("child", nargs="*", help="exec mode: the child command (after --)")
    return parser.parse_args(argv)


def _settings(path):
    """The configuration, with the TLS files it names checked on this host."""
    config = configuration.load(path)
    check_files(config.consul)
    return config


def _load(path):
    config = _settings(path)
    for template in config.templates:
        load_template(template)  # compiles, so a syntax error is reported now
    return config


def main(argv=None) -> int:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    try:
        config = _settings(args.config)
    except configuration.ConfigError as error:
        sys.stderr.write(f"renderer: {error}\n")
        return 2
    _overrides(config, args)
    logs.setup(config.log_level)
    if args.mode == "validate":
        try:
            _load(args.config)
        except (configuration.ConfigError, TemplateError) as error:
            sys.stderr.write(f"renderer: {error}\n")
            return 1
        return 0
    if args.mode != "dry":
        _remove_stale_candidates(config)
    if args.mode in ("once", "dry"):
        runner = Runner(config, dry=args.mode == "dry", stdout=sys.stdout)
        results = runner.once()
        return 0 if all(outcome in ("rendered", "attributes", "unchanged") for outcome in results.values()) else 1
    if args.mode == "exec":
        if args.child:
            config.exec.command = list(args.child)
        if not config.exec.command:
            sys.stderr.write("renderer: exec mode needs exec.command or a command after --\n")
            return 2
        return _exec(config)
    return _daemon(config, args)


def _overrides(config, args) -> None:
    """The command line's settings win over the file's, at start and at every reload."""
    if args.log_level:
        config.log_level = args.log_level
    if args.status_port is not None:
        config.status.port = args.status_port


class _StatusEndpoint:
    """The status endpoint; a reload that changes its address or port moves it."""

    def __init__(self, runner):
        self.runner = runner
        self.server = None
        self.bound = None  # (address, port as configured)

    def apply(self, settings) -> None:
        """Serves on settings' address and port; when it cannot, keeps the previous ones (and says so in settings)."""
        wanted = (settings.address, settings.port)
        if wanted == self.bound:
            return
        previous = self.bound
        self.stop()
        if settings.port is None:
            return
        try:
            self._bind(*wanted)
        except OSError as error:
            logs.event(
                logging.ERROR, "status endpoint not moved", address=settings.address, port=settings.port, error=error
            )
            if previous is not None:
                self._bind(*previous)
                settings.address, settings.port = previous

    def _bind(self, address: str, port: int) -> None:
        self.server = StatusServer(self.runner, address, port)
        self.server.start()
        self.bound = (address, port)
        logs.event(logging.INFO, "status endpoint listening", address=address, port=self.server.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.server, self.bound = None, None


def _remove_stale_candidates(config) -> None:
    """Candidates a crash left beside the destinations (never anything else) go before the first render."""
    for template in config.templates:
        try:
            removed = remove_stale_candidates(template.destination)
        except OSError as error:
            logs.event(logging.ERROR, "stale candidates not removed", template=template.name, error=error)
            continue
        for path in removed:
            logs.event(logging.WARNING, "stale candidate removed", template=template.name, file=path)


def _control(runner, config):
    """The control socket for accept-drop, in state_dir; None without state_dir or when it cannot be made."""
    if config.state_dir is None:
        if any(template.max_drop is not None for template in config.templates):
            logs.event(
                logging.WARNING,
                "max_drop without state_dir: the baseline is lost on restart and accept-drop has no control socket",
            )
        return None
    try:
        server = ControlServer(runner, config.state_dir)
    except OSError as error:
        logs.event(logging.ERROR, "control socket not made: accept-drop cannot be taken", error=error)
        return None
    server.start()
    logs.event(logging.INFO, "control socket listening", socket=server.path)
    return server


def _status(runner, config) -> _StatusEndpoint:
    endpoint = _StatusEndpoint(runner)
    endpoint.apply(config.status)
    return endpoint


def _daemon(config, args) -> int:
    runner = Runner(config)
    endpoint = _status(runner, config)

    def reloaded():
        new = _settings(args.config)
        _overrides(new, args)
        return new

    def apply_outside_runner(new):
        logs.setup(new.log_level)
        endpoint.apply(new.status)

    runner.reloader = reloaded
    runner.on_reload = apply_outside_runner
    signal.signal(signal.SIGTERM, lambda *_args: runner.stop())
    signal.signal(signal.SIGINT, lambda *_args: runner.stop())
    signal.signal(signal.SIGHUP, lambda *_args: runner.request_reload())
    control = _control(runner, config)
    try:
        runner.run()
    finally:
        endpoint.stop()
        if control is not None:
            control.stop()
    return 0


def _exec(config) -> int:
    child = Child(config.exec)
    runner = Runner(config, on_change=lambda state: child.changed())

    def forward(signum, _frame):
        if child.started:
            child.send(signum)
        elif signum in (signal.SIGTERM, signal.SIGINT):
            runner.stop()

    for name in FORWARDED:
        signal.signal(getattr(signal, name), forward)
    signal.signal(signal.SIGCHLD, lambda *_args: runner.wake())

    def on_cycle():
        if not child.started and all(state.settled for state in runner.states):
            child.start()
        elif child.started and child.poll() is not None:
            logs.event(logging.INFO, "child exited", code=child.process.returncode)
            runner.stop()

    endpoint = _status(runner, config)
    control = _control(runner, config)
    try:
        runner.run(on_cycle)
    finally:
        child.stop()
        endpoint.stop()
        if control is not None:
            control.stop()
    return child.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
