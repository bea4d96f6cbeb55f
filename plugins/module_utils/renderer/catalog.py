# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Consul catalog in templates: service(), services() and nodes(), as consul-template has them.

- service("[tag.]name[@dc][|filter]", filter): the instances of a service,
  by default only those whose every check passes (Consul's ?passing, as
  consul-template does); "any" or a comma list of passing, warning,
  critical, unknown filters on the status worked out from all the checks.
  Sorted by node, then service ID.
- services("@dc"): every service with its tags, sorted by name.
- nodes("@dc"): every node, sorted by name.

Service names, tags and datacenters go into a URL: each must match a strict
grammar and is quoted.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field

from ..daemon.consul import ConsulClient
from .dependencies import DependencyError, query, split_datacenter, timeout
from .template import Scope, template_function

SERVICE_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
TAG = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# The tag is everything up to the last dot: a service name has none (consul-template's grammar).
_SERVICE_QUERY = re.compile(r"(?:(?P<tag>[A-Za-z0-9_.-]{1,128})\.)?(?P<name>[A-Za-z0-9_-]{1,128})")
STATUSES = ("passing", "warning", "critical", "unknown")
ANY = "any"


@dataclass(frozen=True)
class HealthService:
    """One instance of a service, with consul-template's field names."""

    Node: str
    NodeID: str
    NodeAddress: str
    NodeDatacenter: str
    Address: str  # the service's address, or its node's when it has none
    ID: str
    Name: str
    Tags: tuple  # sorted
    Status: str  # the worst of its checks: critical, unknown, warning, else passing
    Port: int
    NodeTaggedAddresses: dict = field(default_factory=dict)
    NodeMeta: dict = field(default_factory=dict)
    ServiceMeta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CatalogService:
    Name: str
    Tags: tuple  # sorted


@dataclass(frozen=True)
class CatalogNode:
    ID: str
    Node: str
    Address: str
    Datacenter: str
    TaggedAddresses: dict = field(default_factory=dict)
    Meta: dict = field(default_factory=dict)


def status_of(checks) -> str:
    """consul-template's status of an instance from all its checks (node and service)."""
    statuses = {check.get("Status") for check in checks or ()}
    for status in ("critical", "unknown", "warning"):
        if status in statuses:
            return status
    return "passing"


def _health_service(entry: dict) -> HealthService:
    node, service = entry.get("Node") or {}, entry.get("Service") or {}
    return HealthService(
        Node=node.get("Node", ""),
        NodeID=node.get("ID", ""),
        NodeAddress=node.get("Address", ""),
        NodeDatacenter=node.get("Datacenter", ""),
        Address=service.get("Address") or node.get("Address", ""),
        ID=service.get("ID", ""),
        Name=service.get("Service", ""),
        Tags=tuple(sorted(service.get("Tags") or ())),
        Status=status_of(entry.get("Checks")),
        Port=int(service.get("Port") or 0),
        NodeTaggedAddresses=dict(node.get("TaggedAddresses") or {}),
        NodeMeta=dict(node.get("Meta") or {}),
        ServiceMeta=dict(service.get("Meta") or {}),
    )


@dataclass(frozen=True)
class HealthServiceDependency:
    """/v1/health/service/<name>: its data is a tuple of HealthService, sorted by node then ID."""

    name: str
    tag: str = ""
    datacenter: str = ""
    passing_only: bool = True

    def __post_init__(self):
        if not SERVICE_NAME.fullmatch(self.name):
            raise DependencyError(f"service: {self.name!r} is not a service name ([A-Za-z0-9_-]{{1,128}})")
        if self.tag and not TAG.fullmatch(self.tag):
            raise DependencyError(f"service: {self.tag!r} is not a tag ([A-Za-z0-9_.-]{{1,128}})")

    def __str__(self) -> str:
        text = f"{self.tag}.{self.name}" if self.tag else self.name
        text += f"@{self.datacenter}" if self.datacenter else ""
        return f"service({text}{'' if self.passing_only else '|any'})"

    def fetch(self, client: ConsulClient, index: int = 0, wait: float | None = None):
        params = query(index, wait, self.datacenter)
        if self.passing_only:
            params["passing"] = "true"
        if self.tag:
            params["tag"] = self.tag
        path = "/v1/health/service/" + urllib.parse.quote(self.name, safe="")
        answer = client.get(path, params, timeout(client, index, wait))
        entries = [_health_service(entry) for entry in answer.json() or ()]
        return tuple(sorted(entries, key=lambda service: (service.Node, service.ID))), answer.index


@dataclass(frozen=True)
class CatalogServicesDependency:
    """/v1/catalog/services: its data is a tuple of CatalogService, sorted by name."""

    datacenter: str = ""

    def __str__(self) -> str:
        return f"services({'@' + self.datacenter if self.datacenter else ''})"

    def fetch(self, client: ConsulClient, index: int = 0, wait: float | None = None):
        answer = client.get("/v1/catalog/services", query(index, wait, self.datacenter), timeout(client, index, wait))
        found = answer.json() or {}
        services = (CatalogService(name, tuple(sorted(set(tags or ())))) for name, tags in found.items())
        return tuple(sorted(services, key=lambda service: service.Name)), answer.index


@dataclass(frozen=True)
class CatalogNodesDependency:
    """/v1/catalog/nodes: its data is a tuple of CatalogNode, sorted by name."""

    datacenter: str = ""

    def __str__(self) -> str:
        return f"nodes({'@' + self.datacenter if self.datacenter else ''})"

    def fetch(self, client: ConsulClient, index: int = 0, wait: float | None = None):
        answer = client.get("/v1/catalog/nodes", query(index, wait, self.datacenter), timeout(client, index, wait))
        nodes = (
            CatalogNode(
                ID=item.get("ID", ""),
                Node=item.get("Node", ""),
                Address=item.get("Address", ""),
                Datacenter=item.get("Datacenter", ""),
                TaggedAddresses=dict(item.get("TaggedAddresses") or {}),
                Meta=dict(item.get("Meta") or {}),
            )
            for item in answer.json() or ()
        )
        return tuple(sorted(nodes, key=lambda node: node.Node)), answer.index


def parse_status_filter(text: str) -> tuple | None:
    """None for the default (passing only, asked of Consul), ("any",), or the statuses to keep."""
    statuses = tuple(part.strip() for part in text.split(",") if part.strip())
    if not statuses:
        return None
    unknown = [status for status in statuses if status not in (*STATUSES, ANY)]
    if unknown:
        raise DependencyError(f"service: unknown status filter {', '.join(unknown)} (any, {', '.join(STATUSES)})")
    if ANY in statuses and len(statuses) > 1:
        raise DependencyError("service: 'any' cannot be combined with other statuses")
    return statuses


def service_dependency(text, status_filter=None) -> tuple:
    """(dependency, statuses to keep or None) for service("[tag.]name[@dc][|filter]", filter)."""
    text = str(text)
    text, separator, inline_filter = text.partition("|")
    if separator and status_filter is not None:
        raise DependencyError(f"service({text!r}): give the status filter once, after | or as the second argument")
    statuses = parse_status_filter(inline_filter if separator else status_filter or "")
    if "~" in text:
        raise DependencyError(f"service({text!r}): ~near is not supported (instances are sorted by node)")
    names, datacenter = split_datacenter("service", text)
    match = _SERVICE_QUERY.fullmatch(names)
    if not match:
        raise DependencyError(f"service({text!r}): expected [tag.]name[@datacenter], name [A-Za-z0-9_-]{{1,128}}")
    dependency = HealthServiceDependency(match["name"], match["tag"] or "", datacenter, passing_only=statuses is None)
    return dependency, statuses


@template_function("service")
def service(scope: Scope, text, status_filter=None) -> list:
    dependency, statuses = service_dependency(text, status_filter)
    _found, data = scope.use(dependency)
    if statuses is None or statuses == (ANY,):
        return list(data or ())
    return [instance for instance in data or () if instance.Status in statuses]


def _datacenter_only(function: str, text) -> str:
    """The datacenter of "@dc" (or "" for the local one); consul-template's ~near is not supported."""
    text = str(text)
    if text and not text.startswith("@"):
        raise DependencyError(f"{function}({text!r}): expected nothing or @datacenter")
    return split_datacenter(function, text)[1]


@template_function("services")
def services(scope: Scope, text="") -> list:
    _found, data = scope.use(CatalogServicesDependency(_datacenter_only("services", text)))
    return list(data or ())


@template_function("nodes")
def nodes(scope: Scope, text="") -> list:
    _found, data = scope.use(CatalogNodesDependency(_datacenter_only("nodes", text)))
    return list(data or ())
