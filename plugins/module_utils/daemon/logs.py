# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Structured logging: one logfmt line per event, fields passed as keywords."""

from __future__ import annotations

import logging
import time

LOGGER = logging.getLogger("dockyard")


def event(level: int, message: str, **fields) -> None:
    """Logs one event with its fields (kept apart from the message for the formatter)."""
    LOGGER.log(level, message, extra={"fields": fields})


def _quote(value) -> str:
    text = str(value)
    if text == "" or any(char in text for char in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        parts = ["ts=" + stamp, "level=" + record.levelname.lower(), "msg=" + _quote(record.getMessage())]
        for name, value in sorted(getattr(record, "fields", {}).items()):
            parts.append(f"{name}={_quote(value)}")
        if record.exc_info:
            parts.append("exc=" + _quote(self.formatException(record.exc_info)))
        return " ".join(parts)


def setup(level: str = "info", stream=None) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogfmtFormatter())
    LOGGER.handlers[:] = [handler]
    LOGGER.setLevel(level.upper())
    LOGGER.propagate = False
