# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a template can depend on, and how each dependency is fetched from Consul.

A dependency is a small frozen value (kind and path): it is its own cache key,
never its string form. `ls` and `tree` of one prefix share one dependency, so
one prefix costs one blocking query however many times templates read it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from ..daemon.consul import ConsulClient, Response, kv_path


def _query(index: int, wait: float | None) -> dict:
    params = {}
    if index > 0 and wait:
        params["index"] = str(index)
        params["wait"] = f"{max(1, int(wait))}s"
    return params


def _timeout(client: ConsulClient, index: int, wait: float | None) -> float:
    # Consul adds up to wait/16 of jitter to a blocking query; leave room for it.
    if index > 0 and wait:
        return wait + wait / 16 + client.settings.timeout
    return client.settings.timeout


@dataclass(frozen=True)
class KeyDependency:
    """One key; its data is the value as text, or None when the key does not exist."""

    path: str

    def __str__(self) -> str:
        return f"key({self.path})"

    def fetch(self, client: ConsulClient, index: int = 0, wait: float | None = None):
        answer = client.get(kv_path(self.path), _query(index, wait), _timeout(client, index, wait))
        if answer.status == 404:
            return None, answer.index
        return _entries(answer)[0][1] if answer.body else None, answer.index


@dataclass(frozen=True)
class PrefixDependency:
    """Every key under a prefix; its data is a sorted tuple of (full key, value, create index) triples.

    The create index orders claims by age (the first route to claim a host keeps it).
    """

    prefix: str

    def __str__(self) -> str:
        return f"prefix({self.prefix})"

    def fetch(self, client: ConsulClient, index: int = 0, wait: float | None = None):
        params = _query(index, wait)
        params["recurse"] = "true"
        answer = client.get(kv_path(self.prefix), params, _timeout(client, index, wait))
        if answer.status == 404 or not answer.body:
            return (), answer.index
        return tuple(sorted(_entries(answer))), answer.index


def _entries(answer: Response) -> list:
    pairs = []
    for item in answer.json() or []:
        raw = item.get("Value")
        value = base64.b64decode(raw).decode("utf-8", "replace") if raw else ""
        pairs.append((item["Key"], value, int(item.get("CreateIndex") or 0)))
    return pairs


def prefix_of(path: str) -> str:
    """Prefixes are kept without a leading slash and with a trailing one (or empty for the root)."""
    path = path.strip("/")
    return path + "/" if path else ""
