# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal Consul HTTP client over urllib: token, TLS (CA, client certificate), blocking reads."""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request

from .config import ConsulSettings


class ConsulError(Exception):
    """Consul could not be asked or refused the request (never a plain 404)."""


class Response:
    def __init__(self, status: int, body: bytes, index: int):
        self.status = status
        self.body = body
        self.index = index


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
        # The engine runs without Ansible on hosts, so plain urllib rather than open_url.
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))

    def get(self, path: str, params: dict | None = None, timeout: float | None = None) -> Response:
        """GETs path; a 404 is an answer (with its index), any other failure raises ConsulError."""
        url = self.settings.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = {"Accept": "application/json"}
        if self.settings.token:
            headers["X-Consul-Token"] = self.settings.token
        request = urllib.request.Request(url, headers=headers, method="GET")
        try:
            with self._opener.open(request, timeout=timeout or self.settings.timeout) as answer:
                return Response(answer.status, answer.read(), _index(answer.headers))
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return Response(404, b"", _index(error.headers))
            detail = error.read().decode("utf-8", "replace").strip()
            raise ConsulError(f"consul answered {error.code} for {path}: {detail}") from None
        except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ConsulError(f"consul at {self.settings.base_url} unreachable: {reason}") from None


def _index(headers) -> int:
    try:
        return int(headers.get("X-Consul-Index", "0"))
    except (TypeError, ValueError):
        return 0
