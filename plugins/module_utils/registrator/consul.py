# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small Consul HTTP client over urllib: sessions and the KV calls the registrator makes.

Token header, TLS with a CA and a client certificate, and nothing else.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request

from .config import ConsulSettings


class ConsulError(Exception):
    """Consul could not be asked (status None) or refused the request (its HTTP status)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ConsulClient:
    def __init__(self, settings: ConsulSettings):
        self.settings = settings
        context = None
        if settings.scheme == "https":
            context = ssl.create_default_context(cafile=settings.ca_file or None)
            if settings.cert_file:
                context.load_cert_chain(settings.cert_file, settings.key_file or None)
        # The engine runs without Ansible on hosts, so plain urllib rather than open_url.
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))

    def request(self, method: str, path: str, params: dict | None = None, body=None, timeout: float | None = None):
        """Sends one request; returns (status, decoded JSON or None). A 404 is an answer; other failures raise."""
        url = self.settings.base_url + urllib.parse.quote(path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = {"Accept": "application/json"}
        if self.settings.token:
            headers["X-Consul-Token"] = self.settings.token
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=timeout or self.settings.timeout) as answer:
                payload = answer.read()
                return answer.status, (json.loads(payload) if payload else None)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return 404, None
            detail = error.read().decode("utf-8", "replace").strip()
            raise ConsulError(f"consul answered {error.code} to {method} {path}: {detail}", error.code) from None
        except (urllib.error.URLError, socket.timeout, ConnectionError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise ConsulError(f"consul at {self.settings.base_url} unreachable: {reason}") from None

    # -- sessions ----------------------------------------------------------------------
    def session_create(self, name: str, ttl: str, behavior: str = "delete", lock_delay: str = "0s") -> str:
        """Creates a session with the agent's default node checks (serfHealth); returns its ID."""
        body = {"Name": name, "TTL": ttl, "Behavior": behavior, "LockDelay": lock_delay}
        _status, answer = self.request("PUT", "/v1/session/create", body=body)
        if not isinstance(answer, dict) or not answer.get("ID"):
            raise ConsulError(f"consul answered {answer!r} to a session create")
        return answer["ID"]

    def session_renew(self, session: str) -> bool:
        """Renews a session; False when Consul no longer knows it (invalidated)."""
        status, answer = self.request("PUT", f"/v1/session/renew/{session}")
        return status != 404 and bool(answer)

    def session_destroy(self, session: str, timeout: float | None = None) -> None:
        self.request("PUT", f"/v1/session/destroy/{session}", timeout=timeout)

    def session_list(self) -> list:
        _status, answer = self.request("GET", "/v1/session/list")
        return answer or []

    # -- KV ----------------------------------------------------------------------------
    def kv_acquire(self, key: str, value: bytes, session: str) -> bool:
        """Writes key holding session's lock; False when another session holds it."""
        _status, answer = self.request("PUT", f"/v1/kv/{key}", params={"acquire": session}, body=value)
        return answer is True

    def kv_delete(self, key: str) -> None:
        self.request("DELETE", f"/v1/kv/{key}")

    def kv_recurse(self, prefix: str) -> dict:
        """Every key under prefix: {key: (decoded value bytes, holding session or None)}."""
        status, answer = self.request("GET", f"/v1/kv/{prefix}", params={"recurse": "true"})
        if status == 404 or not answer:
            return {}
        found = {}
        for entry in answer:
            raw = entry.get("Value")
            found[entry["Key"]] = (base64.b64decode(raw) if raw else b"", entry.get("Session"))
        return found
