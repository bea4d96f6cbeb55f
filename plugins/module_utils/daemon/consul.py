# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Consul's HTTP API for the daemons: token, TLS (CA, client certificate), KV reads and writes, sessions.

The engines run on hosts without Ansible, so this is plain urllib rather than
open_url. Each engine parses its own configuration into ConsulSettings.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass


@dataclass
class ConsulSettings:
    address: str = "127.0.0.1:8500"
    scheme: str = "http"
    token: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    verify: bool = True
    timeout: float = 10.0

    @property
    def base_url(self) -> str:
        if "://" in self.address:
            return self.address.rstrip("/")
        return f"{self.scheme}://{self.address}"


class ConsulError(Exception):
    """Consul could not be asked (status None) or refused the request (its HTTP status); never a plain 404."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    index: int  # X-Consul-Index, for the next blocking query

    def json(self):
        """The decoded body, or None when it is empty."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError as error:
            raise ConsulError(f"consul returned malformed JSON: {error}") from None


def kv_path(key: str) -> str:
    return "/v1/kv/" + urllib.parse.quote(key.lstrip("/"), safe="/")


class ConsulClient:
    def __init__(self, settings: ConsulSettings):
        self.settings = settings
        context = None
        if settings.base_url.startswith("https://"):
            context = ssl.create_default_context(cafile=settings.ca_file or None)
            if not settings.verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if settings.cert_file:
                context.load_cert_chain(settings.cert_file, settings.key_file or None)
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))

    def request(self, method: str, path: str, params: dict | None = None, body=None, timeout: float | None = None):
        """Sends one request to path (already URL-quoted); a 404 is an answer, any other failure raises."""
        url = self.settings.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = {"Accept": "application/json"}
        if self.settings.token:
            headers["X-Consul-Token"] = self.settings.token
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=timeout or self.settings.timeout) as answer:
                return Response(answer.status, answer.read(), _index(answer.headers))
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return Response(404, b"", _index(error.headers))
            detail = error.read().decode("utf-8", "replace").strip()
            raise ConsulError(f"consul answered {error.code} to {method} {path}: {detail}", error.code) from None
        except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ConsulError(f"consul at {self.settings.base_url} unreachable: {reason}") from None

    def get(self, path: str, params: dict | None = None, timeout: float | None = None) -> Response:
        return self.request("GET", path, params, timeout=timeout)

    # -- sessions ----------------------------------------------------------------------
    def session_create(self, name: str, ttl: str, behavior: str = "delete", lock_delay: str = "0s") -> str:
        """Creates a session with the agent's default node checks (serfHealth); returns its ID."""
        body = {"Name": name, "TTL": ttl, "Behavior": behavior, "LockDelay": lock_delay}
        answer = self.request("PUT", "/v1/session/create", body=body).json()
        if not isinstance(answer, dict) or not answer.get("ID"):
            raise ConsulError(f"consul answered {answer!r} to a session create")
        return answer["ID"]

    def session_renew(self, session: str) -> bool:
        """Renews a session; False when Consul no longer knows it (invalidated)."""
        answer = self.request("PUT", f"/v1/session/renew/{session}")
        return answer.status != 404 and bool(answer.json())

    def session_destroy(self, session: str, timeout: float | None = None) -> None:
        self.request("PUT", f"/v1/session/destroy/{session}", timeout=timeout)

    def session_list(self) -> list:
        return self.get("/v1/session/list").json() or []

    # -- KV ----------------------------------------------------------------------------
    def kv_acquire(self, key: str, value: bytes, session: str) -> bool:
        """Writes key holding session's lock; False when another session holds it."""
        return self.request("PUT", kv_path(key), params={"acquire": session}, body=value).json() is True

    def kv_delete(self, key: str) -> None:
        self.request("DELETE", kv_path(key))

    def kv_recurse(self, prefix: str) -> dict:
        """Every key under prefix: {key: (decoded value bytes, holding session or None)}."""
        entries = self.get(kv_path(prefix), params={"recurse": "true"}).json() or []
        return {entry["Key"]: (_value(entry), entry.get("Session")) for entry in entries}


def _value(entry: dict) -> bytes:
    raw = entry.get("Value")
    return base64.b64decode(raw) if raw else b""


def _index(headers) -> int:
    try:
        return int(headers.get("X-Consul-Index", "0"))
    except (TypeError, ValueError):
        return 0
