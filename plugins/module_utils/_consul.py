# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Module-side Consul connection: the shared options and a small HTTP client.

Private to this collection. Every Dockyard module that talks to Consul takes
CONNECTION_ARGUMENT_SPEC and builds its client with client_from_params(), so
the options, their CONSUL_HTTP_* environment fallbacks and the error handling
are written once. The client uses Ansible's own URL helpers (open_url), so
target hosts need no extra Python package.
"""

from __future__ import annotations

import json

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import quote, urlencode
from ansible.module_utils.urls import open_url

DEFAULT_ADDRESS = "127.0.0.1:8500"

# The options every Consul module shares. The module's DOCUMENTATION repeats
# them (keep the two in step: ansible-test validate-modules compares them).
CONNECTION_ARGUMENT_SPEC = dict(
    address=dict(type="str", default=DEFAULT_ADDRESS, fallback=(env_fallback, ["CONSUL_HTTP_ADDR"])),
    use_ssl=dict(type="bool", default=False, fallback=(env_fallback, ["CONSUL_HTTP_SSL"])),
    validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["CONSUL_HTTP_SSL_VERIFY"])),
    ca_path=dict(type="path", fallback=(env_fallback, ["CONSUL_CACERT"])),
    client_cert=dict(type="path", fallback=(env_fallback, ["CONSUL_CLIENT_CERT"])),
    client_key=dict(type="path", no_log=False, fallback=(env_fallback, ["CONSUL_CLIENT_KEY"])),
    token=dict(type="str", no_log=True, fallback=(env_fallback, ["CONSUL_HTTP_TOKEN"])),
    token_file=dict(type="path", no_log=False, fallback=(env_fallback, ["CONSUL_HTTP_TOKEN_FILE"])),
    datacenter=dict(type="str"),
    timeout=dict(type="int", default=10),
)


class ConsulError(Exception):
    """A request Consul refused or that never reached it."""

    def __init__(self, message, status=None, body=None):
        super().__init__(message)
        self.status = status
        self.body = body


def base_url(address, use_ssl=False):
    """The API's base URL from an address as CONSUL_HTTP_ADDR spells it.

    `host:port` takes its scheme from use_ssl; `http://` or `https://` in the
    address wins over use_ssl.
    """
    address = address.strip().rstrip("/")
    if "://" in address:
        scheme, _sep, rest = address.partition("://")
        if scheme not in ("http", "https"):
            raise ConsulError(f"Consul address {address!r}: the scheme must be http or https")
        return f"{scheme}://{rest}"
    return f"{'https' if use_ssl else 'http'}://{address}"


def read_token(token, token_file):
    """The ACL token: the token option, else the first line of token_file, else None."""
    if token:
        return token
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as handle:
                return handle.read().strip() or None
        except OSError as error:
            raise ConsulError(f"cannot read the Consul token file {token_file}: {error}") from error
    return None


class ConsulClient:
    """A thin JSON client for Consul's HTTP API."""

    def __init__(
        self,
        url,
        token=None,
        datacenter=None,
        validate_certs=True,
        ca_path=None,
        client_cert=None,
        client_key=None,
        timeout=10,
        token_source="the token option (or CONSUL_HTTP_TOKEN)",
    ):
        self.url = url.rstrip("/")
        self.token = token
        self.token_source = token_source
        self.datacenter = datacenter
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.client_cert = client_cert
        self.client_key = client_key
        self.timeout = timeout

    def request(self, method, path, query=None, body=None, missing_ok=False):
        """Sends one request and returns (status, decoded JSON or None, headers).

        A 404 returns (404, None, headers) when missing_ok; any other status
        of 400 or more raises ConsulError carrying the status and body. A 409
        answer to a transaction is returned, not raised: its body says which
        operations failed.
        """
        query = dict(query or {})
        if self.datacenter:
            query["dc"] = self.datacenter
        url = f"{self.url}/v1/{quote(path.lstrip('/'), safe='/')}"
        if query:
            url += "?" + urlencode(sorted(query.items()))
        headers = {"Accept": "application/json"}
        if self.token:
            headers["X-Consul-Token"] = self.token
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            response = open_url(
                url,
                data=data,
                headers=headers,
                method=method,
                timeout=self.timeout,
                validate_certs=self.validate_certs,
                ca_path=self.ca_path,
                client_cert=self.client_cert,
                client_key=self.client_key,
                follow_redirects="none",
            )
            status, payload, response_headers = response.status, response.read(), response.headers
        except HTTPError as error:
            status, payload, response_headers = error.code, error.read(), error.headers
        except (URLError, OSError) as error:
            raise ConsulError(f"cannot reach Consul at {self.url}: {error}") from error
        if status == 404 and missing_ok:
            return status, None, response_headers
        text = payload.decode("utf-8", errors="replace") if payload else ""
        decoded = None
        if text:
            try:
                decoded = json.loads(text)
            except ValueError:
                decoded = None
        if status == 403:
            raise ConsulError(self._refused(method, path, text), status=status, body=text)
        if status >= 400 and not (status == 409 and isinstance(decoded, dict)):
            raise ConsulError(
                f"Consul answered {method} /v1/{path.lstrip('/')} with HTTP {status}: {text.strip()[:500]}",
                status=status,
                body=text,
            )
        return status, decoded, response_headers

    def _refused(self, method, path, text):
        """The message for a 403: Consul's ACLs refused the token (named by where it came from, never by value)."""
        answer = f"HTTP 403 to {method} /v1/{path.lstrip('/')}: {text.strip()[:500]}"
        if self.token:
            return (
                f"Consul refused the ACL token given in {self.token_source} ({answer}): check that the token exists"
                " in this datacenter and that its policies grant what the task needs"
            )
        return (
            f"Consul's ACLs refused a request made without a token ({answer}): give one in the token option"
            " (or token_file, CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE)"
        )

    def kv_read_tree(self, prefix):
        """Every KV entry whose key starts with prefix (a list of Consul's entry objects)."""
        _status, entries, _headers = self.request("GET", f"kv/{prefix}", query={"recurse": "true"}, missing_ok=True)
        return entries or []

    def txn(self, operations):
        """Runs one transaction; returns (ok, results, errors) as Consul reports them."""
        status, decoded, _headers = self.request("PUT", "txn", body=operations)
        decoded = decoded or {}
        return status == 200, decoded.get("Results") or [], decoded.get("Errors") or []


def client_from_params(params):
    """A ConsulClient from a module's params (see CONNECTION_ARGUMENT_SPEC)."""
    if params["token"]:
        token_source = "the token option (or CONSUL_HTTP_TOKEN)"
    else:
        token_source = f"the token_file option (or CONSUL_HTTP_TOKEN_FILE), {params['token_file']}"
    return ConsulClient(
        base_url(params["address"], params["use_ssl"]),
        token=read_token(params["token"], params["token_file"]),
        datacenter=params["datacenter"],
        validate_certs=params["validate_certs"],
        ca_path=params["ca_path"],
        client_cert=params["client_cert"],
        client_key=params["client_key"],
        timeout=params["timeout"],
        token_source=token_source,
    )
