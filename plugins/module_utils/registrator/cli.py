# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registrator's command line: python3 -m dockyard.registrator.cli --config FILE [--mode MODE].

Modes:
  daemon    keep this node's instances in Consul until SIGTERM/SIGINT, then destroy the session (exit 0), or,
            when systemd is restarting the unit, hand it over to the next run (handover.py);
            with app_config set, also render the apps' configuration files (appconfig/agent.py)
  once      print the instances that would be registered now, one JSON object a line; write nothing
  validate  check the configuration (and that its TLS files can be read); exit 1 with the reason if not valid
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys

from ..appconfig.agent import AppConfigAgent
from ..daemon import logs
from ..daemon.config import LOG_LEVELS
from . import config as configuration
from . import instances, readiness
from .docker_source import DockerError, DockerSource
from .registrator import Registrator


def _arguments(argv):
    parser = argparse.ArgumentParser(prog="dockyard-registrator", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--config", required=True, help="JSON configuration file")
    parser.add_argument("--mode", choices=("daemon", "once", "validate"), default="daemon")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="overrides log_level")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    try:
        config = configuration.load(args.config)
        if args.mode == "validate":
            configuration.check_files(config)
    except configuration.ConfigError as error:
        sys.stderr.write(f"registrator: {error}\n")
        return 1 if args.mode == "validate" else 2
    if args.mode == "validate":
        return 0
    logs.setup(args.log_level or config.log_level)
    if args.mode == "once":
        return _once(config)
    return _daemon(config)


def _once(config, stdout=None) -> int:
    """A dry listing: what a resync would want under this node now (an app with an HTTP check once one probe
    of it passes now, as a freshly started daemon would have it)."""
    stdout = stdout or sys.stdout
    try:
        running = DockerSource(config.docker_url).running()
    except DockerError as error:
        logs.event(logging.ERROR, "cannot list containers", error=error)
        return 1
    for attrs in running:
        if not instances.serving(attrs):
            continue
        try:
            instance = instances.instance_from(attrs, config.node, config.address)
            check = None if instance is None else readiness.check_of(attrs)
        except instances.Skip as skip:
            logs.event(logging.ERROR, "container skipped", reason=skip)
            continue
        if check is not None:
            passed, seen = readiness.probe(instance.addr, instance.port, check)
            if not passed:
                logs.event(logging.INFO, "not ready", container=instances.name_of(attrs), seen=seen)
                continue
        if instance is not None:
            entry = {
                "key": instance.key(config.kv_prefix),
                "value": instance.document(),
                "container": instances.name_of(attrs),
            }
            stdout.write(json.dumps(entry, sort_keys=True) + "\n")
    stdout.flush()
    return 0


def _daemon(config) -> int:
    registrator = Registrator(config)
    # The app configuration agent runs beside the registrator, on threads of its own, when configured.
    agent = AppConfigAgent(config) if config.app_config_dir else None
    signal.signal(signal.SIGTERM, lambda *_args: registrator.stop())
    signal.signal(signal.SIGINT, lambda *_args: registrator.stop())
    if agent is not None:
        agent.start()
    try:
        registrator.run()
    finally:
        if agent is not None:
            agent.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
