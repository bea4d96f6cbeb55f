# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The renderer's command line: python3 -m dockyard.renderer.cli --config FILE [--mode MODE] [-- CHILD ARGS].

Modes:
  daemon    watch Consul and render every template until SIGTERM/SIGINT; SIGHUP reloads the configuration
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
    logs.setup(args.log_level or config.log_level)
    if args.mode == "validate":
        try:
            _load(args.config)
        except (configuration.ConfigError, TemplateError) as error:
            sys.stderr.write(f"renderer: {error}\n")
            return 1
        return 0
    if args.mode in ("once", "dry"):
        runner = Runner(config, dry=args.mode == "dry", stdout=sys.stdout)
        results = runner.once()
        return 0 if all(outcome in ("rendered", "unchanged") for outcome in results.values()) else 1
    if args.status_port is not None:
        config.status.port = args.status_port
    if args.mode == "exec":
        if args.child:
            config.exec.command = list(args.child)
        if not config.exec.command:
            sys.stderr.write("renderer: exec mode needs exec.command or a command after --\n")
            return 2
        return _exec(config, args.config)
    return _daemon(config, args.config)


def _status(runner, config):
    if config.status.port is None:
        return None
    server = StatusServer(runner, config.status.address, config.status.port)
    server.start()
    logs.event(logging.INFO, "status endpoint listening", address=config.status.address, port=server.port)
    return server


def _daemon(config, path) -> int:
    runner = Runner(config)
    runner.reloader = lambda: _settings(path)
    signal.signal(signal.SIGTERM, lambda *_args: runner.stop())
    signal.signal(signal.SIGINT, lambda *_args: runner.stop())
    signal.signal(signal.SIGHUP, lambda *_args: runner.request_reload())
    server = _status(runner, config)
    try:
        runner.run()
    finally:
        if server is not None:
            server.stop()
    return 0


def _exec(config, path) -> int:
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

    server = _status(runner, config)
    try:
        runner.run(on_cycle)
    finally:
        child.stop()
        if server is not None:
            server.stop()
    return child.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
