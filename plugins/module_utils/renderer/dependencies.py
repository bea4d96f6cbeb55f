# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a template can depend on, and how each dependency is fetched.

A dependency is a small frozen value (kind, path, datacenter): it is its own
cache key, never its string form. `ls` and `tree` of one prefix share one
dependency, so one prefix costs one blocking query however many times
templates read it. Every kind has fetch(client, index, wait) -> (data, index),
which watch.py turns into blocking queries; the catalog's kinds live in
catalog.py.

Values are decoded as UTF-8 where they are UTF-8; any other byte is kept as
a lone surrogate (Python's surrogateescape), so a binary value renders back to
its exact bytes when the output is encoded with surrogateescape, never to
replacement characters.
"""

from __future__ import annotations

import base64
import time
import zlib
from dataclasses import dataclass

from ..daemon.consul import _DATACENTER, ConsulClient, Response, kv_path

FILE_POLL_SECONDS = 1.0  # how often a blocking file "query" looks at the file again


class DependencyError(ValueError):
    """A template asked for something that cannot be a dependency (empty path, bad datacenter)."""


def decode_value(raw: bytes) -> str:
    """Consul's bytes as text: exact UTF-8, other bytes as surrogates that encode back to themselves."""
    return raw.decode("utf-8", "surrogateescape")


def encode_text(text: str) -> bytes:
    """The inverse of decode_value, for output and for functions that work on bytes (base64, sha256)."""
    return text.encode("utf-8", "surrogateescape")


def split_datacenter(function: str, argument) -> tuple:
    """'path@dc' -> ('path', 'dc'); the datacenter must be a datacenter name (what the configuration accepts)."""
    text = str(argument)
    path, at, datacenter = text.partition("@")
    if at and not _DATACENTER.fullmatch(datacenter):
        raise DependencyError(f"{function}({text!r}): {datacenter!r} is not a datacenter name ([A-Za-z0-9_.-]{{1,64}})")
    return path, datacenter


def query(index: int, wait: float | None, datacenter: str = "") -> dict:
    params = {}
    if index > 0 and wait:
        params["index"] = str(index)
        params["wait"] = f"{max(1, int(wait))}s"
    if datacenter:
        params["dc"] = datacenter
    return params


def timeout(client: ConsulClient, index: int, wait: float | None) -> float:
    # Consul adds up to wait/16 of jitter to a blocking query; leave room for it.
    if index > 0 and wait:
        return wait + wait / 16 + client.settings.timeout
    return client.settings.timeout


def _with_datacenter(text: str, datacenter: str) -> str:
    return f"{text}@{datacenter}" if datacenter else text


@dataclass(frozen=True)
class KeyDependency:
    """One key; its data is the value as text, or None when the key does not exist."""

    path: str
    datacenter: str = ""

    def __str__(self) -> str:
        return f"key({_with_datacenter(self.path, self.datacenter)})"

    def fetch(self, client: ConsulClient, index: int = 0, wait: float | None = None):
        answer = client.get(kv_path(self.path), query(index, wait, self.datacenter), timeout(client, index, wait))
        if answer.status == 404:
            return None, answer.index
        return _entries(answer)[0][1] if answer.body else None, answer.index


@dataclass(frozen=True)
class PrefixDependency:
    """Every key starting with prefix; its data is a sorted tuple of (full key, value, create index) triples.

    ls() and tree() keep prefixes with a trailing slash (a folder); their
    match="prefix" form keeps the prefix as written, as consul-template does.
    The create index orders claims by age (the first route to claim a host keeps it).
    """

    prefix: str
    datacenter: str = ""

    def __str__(self) -> str:
        return f"prefix({_with_datacenter(self.prefix, self.datacenter)})"

    def fetch(self, client: ConsulClient, index: int = 0, wait: float | None = None):
        params = query(index, wait, self.datacenter)
        params["recurse"] = "true"
        answer = client.get(kv_path(self.prefix), params, timeout(client, index, wait))
        if answer.status == 404 or not answer.body:
            return (), answer.index
        return tuple(sorted(_entries(answer))), answer.index


@dataclass(frozen=True)
class FileContents:
    """A file's data: its text (decoded as KV values are), or why it could not be read."""

    text: str | None
    error: str | None = None


@dataclass(frozen=True)
class FileDependency:
    """A local file, read at each fetch; a blocking fetch polls it until its contents change or wait runs out.

    The "index" is a checksum of the contents (never 0, which would mean
    "no index"): the same contents give the same index, which watch.py reads
    as no news.
    """

    path: str

    def __str__(self) -> str:
        return f"file({self.path})"

    def fetch(self, _client=None, index: int = 0, wait: float | None = None):
        contents, returned = self._read()
        if index > 0 and wait:
            deadline = time.monotonic() + wait
            while returned == index and time.monotonic() < deadline:
                time.sleep(min(FILE_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
                contents, returned = self._read()
        return contents, returned

    def _read(self) -> tuple:
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read()
        except OSError as error:
            reason = error.strerror or str(error)
            return FileContents(None, reason), 1 + zlib.crc32(reason.encode())
        return FileContents(decode_value(raw)), 1 + zlib.crc32(raw)


def _entries(answer: Response) -> list:
    pairs = []
    for item in answer.json() or []:
        raw = item.get("Value")
        value = decode_value(base64.b64decode(raw)) if raw else ""
        pairs.append((item["Key"], value, int(item.get("CreateIndex") or 0)))
    return pairs


def prefix_of(path: str) -> str:
    """Folders are kept without a leading slash and with a trailing one (or empty for the root)."""
    path = path.strip("/")
    return path + "/" if path else ""
