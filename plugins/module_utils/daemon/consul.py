# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way Dockyard reaches Consul: settings, the address check, the errors and the HTTP client.

Used alike by the daemons (renderer, registrator: they run without Ansible)
and by the modules (render, consul_keys, through _consul.py, which maps the
modules' options onto these settings). Plain Python and urllib only: Ansible
ships this file with a module (module_utils) and the roles copy it to hosts
with the daemons.

- parse_address() checks an address: scheme (http or https), host, port;
  credentials, a path, a query or control characters are refused, naming the
  setting.
- parse_settings() resolves the settings from a mapping (a daemon's
  configuration file or a module's options) over an environment
  (CONSUL_HTTP_* as the consul CLI reads them): the mapping wins.
- ConsulClient sends the requests; ConsulError is what fails, whatever went
  wrong on the way (refused, reset, truncated, timed out, TLS, bad JSON).
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from .config import ConfigError, duration, readable_file

DEFAULT_ADDRESS = "127.0.0.1:8500"

# Every setting a mapping may give, and the environment variable (as the consul CLI reads it) each falls back to.
SETTINGS = ("address", "scheme", "ssl", "verify", "token", "token_file", "ca_file", "cert_file", "key_file")
SETTINGS += ("timeout", "datacenter")
ENVIRONMENT = {
    "address": "CONSUL_HTTP_ADDR",
    "ssl": "CONSUL_HTTP_SSL",
    "verify": "CONSUL_HTTP_SSL_VERIFY",
    "token": "CONSUL_HTTP_TOKEN",
    "token_file": "CONSUL_HTTP_TOKEN_FILE",
    "ca_file": "CONSUL_CACERT",
    "cert_file": "CONSUL_CLIENT_CERT",
    "key_file": "CONSUL_CLIENT_KEY",
}
TLS_FILES = ("ca_file", "cert_file", "key_file")
_TEXT = ("address", "scheme", "token", "token_file", "ca_file", "cert_file", "key_file", "datacenter")

_ADDRESS = re.compile(
    r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?"
    r"(?P<userinfo>[^@/]*@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>/.*)?",
    re.DOTALL,
)
_DATACENTER = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_ADDRESS_LENGTH = 300


@dataclass
class ConsulSettings:
    """How to reach Consul. address is host:port (no scheme); names says which setting each value came from."""

    address: str = DEFAULT_ADDRESS
    scheme: str = "http"
    token: str = ""
    token_file: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    verify: bool = True
    timeout: float = 10.0
    datacenter: str = ""
    names: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.address}"

    def name(self, setting: str) -> str:
        """The name to report for a setting: the option, setting or environment variable it came from."""
        return self.names.get(setting, f"consul.{setting}")


def parse_address(text, name: str = "consul.address") -> tuple:
    """(scheme or None, host:port) from host[:port] or http(s)://host[:port]; ConfigError naming `name`."""
    if not isinstance(text, str):
        raise ConfigError(f"{name}: expected a string, got {text!r}")
    address = text.strip(" ")
    if not address or len(address) > MAX_ADDRESS_LENGTH or any(ord(char) < 32 or ord(char) == 127 for char in address):
        raise ConfigError(f"{name}: expected host:port or http(s)://host:port, got {text!r}")
    scheme, separator, _rest = address.partition("://")
    if separator and scheme.lower() not in ("http", "https"):
        raise ConfigError(f"{name}: the scheme must be http or https, got {scheme}://")
    match = _ADDRESS.fullmatch(address)
    if not match:
        raise ConfigError(f"{name}: expected host:port or http(s)://host:port, got {text!r}")
    scheme = match.group("scheme")
    if match.group("userinfo") is not None:
        raise ConfigError(f"{name}: credentials in the address are refused; give an ACL token instead")
    if match.group("path") not in (None, "/"):
        raise ConfigError(f"{name}: a path in the address is refused; give only host:port, got {text!r}")
    port = match.group("port")
    if port is not None and not 0 < int(port) <= 65535:
        raise ConfigError(f"{name}: the port must lie between 1 and 65535, got {port}")
    hostport = match.group("host") + (f":{int(port)}" if port is not None else "")
    return (scheme.lower() if scheme else None), hostport


def _truthy(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}: expected true or false, got {value!r}")


def parse_settings(raw=None, environ=None, names=None, where: str = "consul") -> ConsulSettings:
    """ConsulSettings from raw (a mapping of SETTINGS) over environ (CONSUL_HTTP_* and friends).

    raw wins over environ, which wins over the defaults; None or "" counts as
    not given. A scheme in the address wins over scheme and ssl. A ConfigError
    names the setting: names[setting] when given (a module's option names),
    else `<where>.<setting>`, or names[variable] or the variable for a value
    from the environment. TLS files given in raw need https; ones from the
    environment are used only when the scheme is https, as the consul CLI does.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = sorted(set(raw) - set(SETTINGS))
    if unknown:
        raise ConfigError("{}: unknown setting(s) {}".format(where, ", ".join(unknown)))
    names = dict(names or {})
    values, origin = {}, {}
    environ = environ or {}
    for setting, variable in ENVIRONMENT.items():
        if environ.get(variable):
            values[setting], origin[setting] = environ[variable], names.get(variable, variable)
    for setting, value in raw.items():
        if value is not None and value != "":
            values[setting], origin[setting] = value, names.get(setting, f"{where}.{setting}")
    for setting in _TEXT:
        if setting in values and not isinstance(values[setting], str):
            raise ConfigError(f"{origin[setting]}: expected a string, got {values[setting]!r}")

    settings = ConsulSettings(names={setting: names.get(setting, f"{where}.{setting}") for setting in SETTINGS})
    settings.names.update(origin)
    scheme = None
    if "address" in values:
        scheme, settings.address = parse_address(values["address"], origin["address"])
    if "scheme" in values:
        if values["scheme"] not in ("http", "https"):
            raise ConfigError(f"{origin['scheme']}: expected http or https, got {values['scheme']!r}")
        scheme = scheme or values["scheme"]
    if "ssl" in values and _truthy(values["ssl"], origin["ssl"]):
        scheme = scheme or "https"
    settings.scheme = scheme or "http"
    if "verify" in values:
        settings.verify = _truthy(values["verify"], origin["verify"])
    settings.token = values.get("token", "").strip()
    for setting in ("token_file", *TLS_FILES):
        setattr(settings, setting, values.get(setting, ""))
    if "timeout" in values:
        settings.timeout = duration(values["timeout"], origin["timeout"])
        if settings.timeout <= 0:
            raise ConfigError(f"{origin['timeout']}: must be more than 0")
    if "datacenter" in values:
        if not _DATACENTER.fullmatch(values["datacenter"]):
            raise ConfigError(f"{origin['datacenter']}: expected a datacenter name, got {values['datacenter']!r}")
        settings.datacenter = values["datacenter"]
    if bool(settings.cert_file) != bool(settings.key_file):
        raise ConfigError(f"{settings.name('cert_file')} and {settings.name('key_file')} go together")
    given = [setting for setting in TLS_FILES if raw.get(setting)]  # given here, not inherited from the environment
    if settings.scheme == "http" and given:
        files = ", ".join(settings.name(setting) for setting in given)
        https = names.get("https", f"{where}.scheme https")
        raise ConfigError(f"{files}: TLS files need {https} (or an https:// address)")
    return settings


def check_files(settings: ConsulSettings) -> None:
    """On the host: the token file and the CA, certificate and key files the settings use exist and can be read.

    A ConfigError names the setting (settings.name()). Without this check a
    missing file passes validation and stops the first Consul request.
    """
    if settings.token_file and not settings.token:
        readable_file(settings.token_file, settings.name("token_file"))
    if settings.scheme != "https":
        return  # not used: TLS files given in the settings need https, ones from the environment are ignored
    for setting in TLS_FILES:
        path = getattr(settings, setting)
        if path:
            readable_file(path, settings.name(setting))


class ConsulError(Exception):
    """Consul could not be asked (status None) or refused the request (its HTTP status, and the body it sent)."""

    def __init__(self, message: str, status: int | None = None, body: str = ""):
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    index: int  # X-Consul-Index, for the next blocking query
    last_contact: float = 0.0  # X-Consul-LastContact in seconds: how long since the answering server heard the leader

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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Consul never redirects; following one would send the ACL token elsewhere."""

    def redirect_request(self, *_args, **_kwargs):
        return None


class ConsulClient:
    """Requests to one Consul agent.

    max_stale (seconds, 0 for off) lets any server answer a GET (`stale`), as
    consul-template's max_stale does: an answer whose X-Consul-LastContact is
    above max_stale is asked again of the leader.
    """

    def __init__(self, settings: ConsulSettings, max_stale: float = 0.0):
        self.settings = settings
        self.max_stale = max_stale
        self.token = settings.token or _read_token(settings)
        context = None
        if settings.scheme == "https":
            context = ssl.create_default_context(cafile=settings.ca_file or None)
            if not settings.verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if settings.cert_file:
                context.load_cert_chain(settings.cert_file, settings.key_file or None)
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirect)

    def request(self, method: str, path: str, params=None, body=None, timeout=None, accept=()) -> Response:
        """Sends one request to path (already URL-quoted).

        A 404, and any status in accept, is an answer; any other failure raises ConsulError.
        """
        params = dict(params or {})
        if self.settings.datacenter:
            # A template's key("x@dc2") asks another datacenter than the configured one.
            params.setdefault("dc", self.settings.datacenter)
        url = self.settings.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = {"Accept": "application/json"}
        if self.token:
            headers["X-Consul-Token"] = self.token
        data = body
        if body is not None and not isinstance(body, bytes):
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            return self._send(request, method, path, timeout or self.settings.timeout, accept)
        # Whatever breaks on the way (refused, reset, truncated answer, timeout, TLS) is Consul not answering.
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", None) or f"{type(error).__name__}: {error}"
            raise ConsulError(f"consul at {self.settings.base_url} unreachable: {reason}") from None

    def _send(self, request, method: str, path: str, timeout: float, accept) -> Response:
        try:
            with self._opener.open(request, timeout=timeout) as answer:
                return Response(answer.status, answer.read(), _index(answer.headers), _last_contact(answer.headers))
        except urllib.error.HTTPError as error:
            payload = error.read()
            if error.code == 404 or error.code in accept:
                body = b"" if error.code == 404 else payload
                return Response(error.code, body, _index(error.headers), _last_contact(error.headers))
            detail = payload.decode("utf-8", "replace").strip()[:500]
            answer = f"consul answered HTTP {error.code} to {method} {path}: {detail}"
            message = self._refused(answer) if error.code == 403 else answer
            raise ConsulError(message, error.code, detail) from None

    def _refused(self, answer: str) -> str:
        """A 403: the ACL token is named by where it came from, never by its value."""
        names = self.settings.names
        if self.token:
            source = names.get("token") if self.settings.token else names.get("token_file")
            return (
                f"Consul refused the ACL token given in {source} ({answer}): check that the token exists in this"
                " datacenter and that its policies grant what is asked"
            )
        return f"Consul's ACLs refused a request made without a token ({answer}): give one in {names.get('token')}"

    def get(self, path: str, params: dict | None = None, timeout: float | None = None) -> Response:
        """A read; with max_stale, from any server, and again from the leader when that answer is too stale."""
        if not self.max_stale:
            return self.request("GET", path, params, timeout=timeout)
        answer = self.request("GET", path, {**(params or {}), "stale": ""}, timeout=timeout)
        if too_stale(answer, self.max_stale):
            return self.request("GET", path, params, timeout=timeout)
        return answer

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

    def kv_keys(self, prefix: str) -> list:
        """The keys under prefix (none: an empty list)."""
        return self.get(kv_path(prefix), params={"keys": ""}).json() or []

    def kv_read_tree(self, prefix: str) -> list:
        """Every KV entry whose key starts with prefix, as Consul's entry objects (with ModifyIndex)."""
        return self.get(kv_path(prefix), params={"recurse": "true"}).json() or []

    def txn(self, operations: list) -> tuple:
        """Runs one transaction; returns (ok, results, errors) as Consul reports them (a 409 is an answer)."""
        answer = self.request("PUT", "/v1/txn", body=operations, accept=(409,))
        decoded = answer.json() or {}
        if not isinstance(decoded, dict):
            raise ConsulError(f"consul answered {answer.status} to PUT /v1/txn with {decoded!r}", answer.status)
        return answer.status == 200, decoded.get("Results") or [], decoded.get("Errors") or []


def _read_token(settings: ConsulSettings) -> str:
    """The first line of token_file ("" without one); ConsulError naming the setting when it cannot be read."""
    if not settings.token_file:
        return ""
    try:
        with open(settings.token_file, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as error:
        raise ConsulError(
            f"{settings.name('token_file')}: cannot read the Consul token file {settings.token_file}: {error.strerror}"
        ) from None


def _value(entry: dict) -> bytes:
    raw = entry.get("Value")
    return base64.b64decode(raw) if raw else b""


def too_stale(answer: Response, max_stale: float) -> bool:
    """Whether a stale read's answer lags the leader by more than max_stale seconds."""
    return answer.last_contact > max_stale


def _last_contact(headers) -> float:
    try:
        return max(0.0, int(headers.get("X-Consul-LastContact", "0")) / 1000)
    except (TypeError, ValueError):
        return 0.0


def _index(headers) -> int:
    try:
        return int(headers.get("X-Consul-Index", "0"))
    except (TypeError, ValueError):
        return 0
