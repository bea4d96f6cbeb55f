# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The router reporter's command line: python3 -m dockyard.router.cli --config FILE [--mode MODE].

Modes:
  daemon    publish this router's HAProxy state to Consul until SIGTERM/SIGINT (exit 0)
  once      print the report that would be written now (one JSON line); write nothing
  validate  check the configuration (and that its token and TLS files can be read); exit 1 with the reason if not
  health    read the running daemon's status file; exit 0 when it writes its report, 1 (saying why) when not
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from ..daemon import logs
from ..daemon.config import LOG_LEVELS, ConfigError
from . import config as configuration
from .haproxy import HaproxyError, MasterCLI, ParseError
from .report import Report
from .reporter import Reporter, health


def _arguments(argv):
    parser = argparse.ArgumentParser(prog="dockyard-router", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--config", required=True, help="JSON configuration file")
    parser.add_argument("--mode", choices=("daemon", "once", "validate", "health"), default="daemon")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="overrides log_level")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    try:
        config = configuration.load(args.config)
        if args.mode == "validate":
            configuration.check_files(config)
    except ConfigError as error:
        sys.stderr.write(f"router: {error}\n")
        return 1 if args.mode == "validate" else 2
    if args.mode == "validate":
        return 0
    if args.mode == "health":
        return _health(config)
    logs.setup(args.log_level or config.log_level)
    if args.mode == "once":
        return _once(config)
    return _daemon(config)


def _once(config, stdout=None) -> int:
    stdout = stdout or sys.stdout
    try:
        snapshot = MasterCLI(config.master_socket).snapshot()
    except (HaproxyError, ParseError) as error:
        sys.stderr.write(f"router: {error}\n")
        return 1
    report = Report(config.node, time.time(), config.heartbeat_ms, snapshot.reloads, snapshot.worker, snapshot.backends)
    stdout.write(json.dumps({"key": config.key, "value": json.loads(report.value())}, sort_keys=True) + "\n")
    return 0


def _health(config) -> int:
    try:
        with open(config.status_file, encoding="utf-8") as handle:
            status = json.load(handle)
    except (OSError, ValueError) as error:
        sys.stderr.write(f"router: no status in {config.status_file}: {error}\n")
        return 1
    healthy, reason = health(status if isinstance(status, dict) else {}, time.time())
    (sys.stdout if healthy else sys.stderr).write(f"router: {reason}\n")
    return 0 if healthy else 1


def _daemon(config) -> int:
    reporter = Reporter(config)
    signal.signal(signal.SIGTERM, lambda *_args: reporter.stop())
    signal.signal(signal.SIGINT, lambda *_args: reporter.stop())
    reporter.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
