# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An app instance as Consul holds it: the registrator writes it, the routers read it.

Key <prefix>instances/<app>/<node>/<task>; value {"addr", "port", "version", "track"}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

TRACKS = ("stable", "canary")


@dataclass(frozen=True)
class Instance:
    app: str
    node: str
    task: str
    addr: str
    port: int
    version: str = ""
    track: str = "stable"

    def key(self, prefix: str) -> str:
        return f"{prefix}instances/{self.app}/{self.node}/{self.task}"

    def document(self) -> dict:
        return {"addr": self.addr, "port": self.port, "version": self.version, "track": self.track}

    def value(self) -> bytes:
        return json.dumps(self.document(), sort_keys=True).encode("utf-8")

    @property
    def address(self) -> str:
        """addr:port as HAProxy reads it (IPv6 in brackets)."""
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"{host}:{self.port}"
