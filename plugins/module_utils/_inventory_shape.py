# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inventory's shape, checked on the controller before playbooks/site.yml changes anything (issue 17).

Pure Python, no Ansible: the action plugin dockyard.platform.inventory_shape passes the platform's groups and, per
host, the values the inventory sets for the variables of VARIABLES (templated on the controller); check() fills in
the roles' defaults for the rest and returns

- errors: what cannot work (an empty group the platform needs, a scheduler node without Docker, a host name that a
  system the platform feeds it to refuses, two components on one port of one host);
- warnings: what works, but not as the operator may think (an even quorum, no router, a router that runs no app).

Each message names the group, host or variable, why, and what to do.

Where an inventory host name becomes an identifier (docs/environments.md, "Inventory shape"):
- the registrator's and the router reporter's node names (registrator_node_name, haproxy_reporter_node_name): Consul
  key segments, parsed by the routing schema (daemon/routing.py parse_name);
- HAProxy server names <node>-<Swarm task ID>, which each router's reporter reads back (router/haproxy.py NAME);
- the consul role's ACL policies registrator-<node> and router-<node>, under Consul's grammar for policy names;
- Consul node names (consul_node_name), which Consul compares ignoring case;
- the common name of the certificates the registry and docker_host roles issue, limited by X.509;
- the registry's address in image names, <first registry host>:<port>/<image>, under Docker's reference grammar.
ZooKeeper's server entries and Swarm take no inventory name as an identifier: zoo.cfg names a peer by its
zookeeper_address (a resolvable name or an address), and Swarm names a node by the host's own hostname.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .daemon.routing import RouteError, parse_name

ZOOKEEPER = "zookeeper"
CONSUL_SERVERS = "consul_servers"
MASTERS = "scheduler_masters"
AGENTS = "scheduler_agents"
DOCKER_HOSTS = "docker_hosts"
ROUTERS = "routers"
REGISTRY = "registry"
# The groups playbooks/site.yml runs its plays on.
PLATFORM_GROUPS = (ZOOKEEPER, CONSUL_SERVERS, REGISTRY, DOCKER_HOSTS, MASTERS, AGENTS, ROUTERS)
SCHEDULER_GROUPS = (MASTERS, AGENTS)
# site.yml gives every scheduler node and router a Consul agent: a client where it is not a server.
CONSUL_AGENT_GROUPS = (CONSUL_SERVERS, MASTERS, AGENTS, ROUTERS)

# The groups without which site.yml leaves out a part every deployment needs, with what fails and what to put there.
REQUIRED = {
    ZOOKEEPER: (
        "it is the ZooKeeper ensemble, where the app module takes its deploy locks and keeps the deployment ledger",
        "put 3 (or 5) hosts in it",
    ),
    CONSUL_SERVERS: (
        "its hosts are the Consul servers every other agent joins, and hold the routes and instances in their KV store",
        "put 3 (or 5) hosts in it",
    ),
    MASTERS: (
        "its hosts are the Swarm managers: the swarm starts on the first, and deploy_app.yml runs there",
        "put 1 or 3 hosts in it",
    ),
    DOCKER_HOSTS: (
        "its hosts get the Docker engine the scheduler runs app tasks on",
        "put every scheduler node in it",
    ),
}
# The groups that keep a quorum, and what keeps it.
QUORUMS = {
    ZOOKEEPER: "the ZooKeeper ensemble",
    CONSUL_SERVERS: "the Consul servers' Raft",
    MASTERS: "the Swarm managers' Raft",
}


class _InventoryName:
    """A default that is the host's own inventory name, as in the roles' defaults ("{{ inventory_hostname }}")."""

    def __repr__(self) -> str:
        return "INVENTORY_NAME"


INVENTORY_NAME = _InventoryName()


@dataclass(frozen=True)
class Variable:
    """A role variable the check reads: its role, its default there, and the groups whose hosts use it."""

    role: str
    default: object
    groups: tuple


VARIABLES = {
    "consul_node_name": Variable("consul", INVENTORY_NAME, CONSUL_AGENT_GROUPS),
    "consul_https_address": Variable("consul", "0.0.0.0", CONSUL_AGENT_GROUPS),
    "consul_https_port": Variable("consul", 8501, CONSUL_AGENT_GROUPS),
    "consul_http_loopback": Variable("consul", False, CONSUL_AGENT_GROUPS),
    "consul_http_port": Variable("consul", 8500, CONSUL_AGENT_GROUPS),
    # Their defaults are the groups (the consul role's defaults); an inventory that sets them sets them for the
    # consul play, and they are read from the first Consul server.
    "consul_registrator_nodes": Variable("consul", None, (CONSUL_SERVERS,)),
    "consul_router_nodes": Variable("consul", None, (CONSUL_SERVERS,)),
    "zookeeper_client_port": Variable("zookeeper", 2181, (ZOOKEEPER,)),
    "zookeeper_peer_port": Variable("zookeeper", 2888, (ZOOKEEPER,)),
    "zookeeper_election_port": Variable("zookeeper", 3888, (ZOOKEEPER,)),
    "registry_listen_address": Variable("registry", "", (REGISTRY,)),
    "registry_port": Variable("registry", 5000, (REGISTRY,)),
    "registry_tls_cert": Variable("registry", "", (REGISTRY,)),
    "docker_host_remote_api": Variable("docker_host", False, (DOCKER_HOSTS,)),
    "docker_host_remote_api_address": Variable("docker_host", "0.0.0.0", (DOCKER_HOSTS,)),
    "docker_host_remote_api_port": Variable("docker_host", 2376, (DOCKER_HOSTS,)),
    "docker_host_metrics_address": Variable("docker_host", "", (DOCKER_HOSTS,)),
    "docker_host_tls_cert": Variable("docker_host", "", (DOCKER_HOSTS,)),
    "scheduler_master_listen_port": Variable("scheduler_master", 2377, (MASTERS,)),
    "registrator_node_name": Variable("registrator", INVENTORY_NAME, SCHEDULER_GROUPS),
    "haproxy_bind_address": Variable("haproxy", "0.0.0.0", (ROUTERS,)),
    "haproxy_http_port": Variable("haproxy", 80, (ROUTERS,)),
    "haproxy_https_port": Variable("haproxy", 443, (ROUTERS,)),
    "haproxy_management_address": Variable("haproxy", "127.0.0.1", (ROUTERS,)),
    "haproxy_management_port": Variable("haproxy", 8404, (ROUTERS,)),
    "haproxy_service_port_range": Variable("haproxy", {"first": 10000, "last": 19999}, (ROUTERS,)),
    "haproxy_reporter_enabled": Variable("haproxy", True, (ROUTERS,)),
    "haproxy_reporter_node_name": Variable("haproxy", INVENTORY_NAME, (ROUTERS,)),
    # The haproxy role runs the renderer on every router with the renderer role's defaults.
    "renderer_status_address": Variable("renderer", "127.0.0.1", (ROUTERS,)),
    "renderer_status_port": Variable("renderer", 8559, (ROUTERS,)),
}

# Consul's grammar for an ACL policy name (Consul 1.8 answers "Only alphanumeric characters, '-' and '_' are
# allowed"); it also compares policy names ignoring case.
_POLICY_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
# What the consul role replaces with '_' in a node's policy names (roles/consul/vars/main.yml).
POLICY_NAME_REFUSED = re.compile(r"[^A-Za-z0-9_-]")
# Swarm task IDs have 25 characters, and each router's reporter reads HAProxy server names <node>-<task> of at most
# 100 (router/haproxy.py NAME): a longer one makes its whole report an error, and deployments wait on it.
SWARM_TASK_ID_LENGTH = 25
MAX_SERVER_NAME = 100
MAX_NODE_NAME = MAX_SERVER_NAME - 1 - SWARM_TASK_ID_LENGTH
# X.509's upper bound on a common name (the cryptography library refuses a longer one).
MAX_COMMON_NAME = 64
# One dot-separated part of the domain of a Docker image reference (distribution's reference grammar).
_DOCKER_DOMAIN_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")

# A listener's address that stands for the host's own address (Consul's bind address, from the host's facts).
HOST_ADDRESS = "its own address"
_WILDCARDS = ("", "0.0.0.0", "::", "[::]", "*")


@dataclass(frozen=True)
class Listener:
    """A TCP port a component binds on each host of groups: a variable's value or a fixed port, on an address."""

    name: str
    groups: tuple
    port: object  # a variable's name (str) or a fixed port (int)
    address: str  # a variable's name, a literal address or HOST_ADDRESS
    when: str = ""  # a variable that must be true for the port to be bound


LISTENERS = (
    Listener("consul_https_port", CONSUL_AGENT_GROUPS, "consul_https_port", "consul_https_address"),
    Listener("consul_http_port", CONSUL_AGENT_GROUPS, "consul_http_port", "127.0.0.1", when="consul_http_loopback"),
    Listener("Consul's Serf LAN port", CONSUL_AGENT_GROUPS, 8301, HOST_ADDRESS),
    Listener("Consul's DNS port", CONSUL_AGENT_GROUPS, 8600, "127.0.0.1"),
    Listener("Consul's server RPC port", (CONSUL_SERVERS,), 8300, HOST_ADDRESS),
    Listener("Consul's Serf WAN port", (CONSUL_SERVERS,), 8302, HOST_ADDRESS),
    # zoo.cfg sets quorumListenOnAllIPs and no clientPortAddress.
    Listener("zookeeper_client_port", (ZOOKEEPER,), "zookeeper_client_port", "0.0.0.0"),
    Listener("zookeeper_peer_port", (ZOOKEEPER,), "zookeeper_peer_port", "0.0.0.0"),
    Listener("zookeeper_election_port", (ZOOKEEPER,), "zookeeper_election_port", "0.0.0.0"),
    Listener("registry_port", (REGISTRY,), "registry_port", "registry_listen_address"),
    Listener(
        "docker_host_remote_api_port",
        (DOCKER_HOSTS,),
        "docker_host_remote_api_port",
        "docker_host_remote_api_address",
        when="docker_host_remote_api",
    ),
    # A worker keeps scheduler_agent_listen_port without binding it; only managers listen on theirs.
    Listener("scheduler_master_listen_port", (MASTERS,), "scheduler_master_listen_port", "0.0.0.0"),
    Listener("Swarm's gossip port", SCHEDULER_GROUPS, 7946, "0.0.0.0"),
    Listener("haproxy_http_port", (ROUTERS,), "haproxy_http_port", "haproxy_bind_address"),
    Listener("haproxy_https_port", (ROUTERS,), "haproxy_https_port", "haproxy_bind_address"),
    Listener("haproxy_management_port", (ROUTERS,), "haproxy_management_port", "haproxy_management_address"),
    Listener("renderer_status_port", (ROUTERS,), "renderer_status_port", "renderer_status_address"),
)


@dataclass(frozen=True)
class Findings:
    """What check() found: errors (what cannot work) and warnings, each a sentence naming what it is about."""

    errors: tuple
    warnings: tuple


def needed_variables(groups: dict, host: str) -> tuple:
    """The names of VARIABLES that the check reads for host, given its groups: the only ones worth templating."""
    member_of = {name for name, hosts in groups.items() if host in hosts}
    return tuple(name for name, variable in VARIABLES.items() if member_of.intersection(variable.groups))


def check(groups: dict, values: dict) -> Findings:
    """Errors and warnings for the inventory's groups ({group: [host, ...]}) and values ({host: {variable: value}}).

    A group left out of groups is empty. values holds what the inventory sets, templated; a variable it does not
    hold has the role's default.
    """
    shape = _Shape({name: list(dict.fromkeys(groups.get(name) or ())) for name in PLATFORM_GROUPS}, values)
    errors, warnings = [], []
    for part in (_group_findings, _router_findings, _name_findings, _port_findings):
        found_errors, found_warnings = part(shape)
        errors.extend(found_errors)
        warnings.extend(found_warnings)
    return Findings(tuple(errors), tuple(warnings))


class _Shape:
    def __init__(self, groups: dict, values: dict) -> None:
        self.groups = groups
        self.values = values

    def hosts(self, *names: str) -> list:
        """The hosts of the named groups, each once, in the order of the groups and of each group."""
        return list(dict.fromkeys(host for name in names for host in self.groups[name]))

    def value(self, host: str, name: str):
        given = self.values.get(host) or {}
        if name in given:
            return given[name]
        default = VARIABLES[name].default
        return host if default is INVENTORY_NAME else default


# -- groups ---------------------------------------------------------------------------------------------------------
def _listed(hosts) -> str:
    return ", ".join(hosts)


def _group_findings(shape: _Shape):
    errors, warnings = [], []
    for name, (why, what_to_do) in REQUIRED.items():
        if not shape.groups[name]:
            errors.append(f"group {name} is empty or missing: {why}; {what_to_do}.")
    for name, what in QUORUMS.items():
        members = shape.groups[name]
        if members and len(members) % 2 == 0:
            majority = len(members) // 2 + 1
            survives = len(members) - majority
            warnings.append(
                f"group {name} has {len(members)} hosts ({_listed(members)}): {what} needs {majority} of them up, "
                f"so it survives {survives} failure{'' if survives == 1 else 's'}, no more than with "
                f"{len(members) - 1}; use an odd number of hosts (3 or 5)."
            )
    agents = set(shape.groups[AGENTS])
    for host in shape.groups[MASTERS]:
        if host in agents:
            errors.append(
                f"host {host} is in both scheduler_masters and scheduler_agents: a Swarm node is a manager or a "
                f"worker, and a manager runs app tasks as well; list it in scheduler_masters only."
            )
    docker_hosts = set(shape.groups[DOCKER_HOSTS])
    for name in SCHEDULER_GROUPS:
        for host in shape.groups[name]:
            if host not in docker_hosts:
                errors.append(
                    f"host {host} is in {name} but not in docker_hosts: Swarm runs in the Docker engine that the "
                    f"docker_host role installs; add it to docker_hosts."
                )
    return errors, warnings


def _router_findings(shape: _Shape):
    warnings = []
    scheduler_nodes = set(shape.hosts(*SCHEDULER_GROUPS))
    routers = shape.groups[ROUTERS]
    if not routers:
        warnings.append(
            "group routers is empty or missing: apps deploy and run, but no HAProxy routes to them (no virtual host "
            "on ports 80 and 443, no service port), and a deployment does not wait for any router to see its instances "
            "UP; put every scheduler node in routers."
        )
        return [], warnings
    edge = [host for host in routers if host not in scheduler_nodes]
    for host in edge:
        warnings.append(
            f"host {host} is a router but not a scheduler node: it gets HAProxy, the renderer, the router reporter and "
            f"a Consul client agent, and routes to the instances on the scheduler nodes over the network (an edge "
            f"router, which needs no Docker); it runs no app task. To run apps there too, add it to scheduler_agents "
            f"and docker_hosts."
        )
    if scheduler_nodes and len(edge) == len(routers):
        warnings.append(
            f"no scheduler node is a router (routers: {_listed(routers)}): an app task reaches another app only "
            f"through a router's address, never through the service port on its own host (docs/haproxy.md); put the "
            f"scheduler nodes in routers too."
        )
    return [], warnings


# -- names ----------------------------------------------------------------------------------------------------------
def _name_findings(shape: _Shape):
    errors, warnings = [], []
    errors.extend(_daemon_node_names(shape))
    errors.extend(_policy_names(shape))
    errors.extend(_consul_node_names(shape))
    errors.extend(_common_names(shape))
    warnings.extend(_registry_address(shape))
    return errors, warnings


def _daemon_node_names(shape: _Shape):
    errors = []
    for host in shape.hosts(*SCHEDULER_GROUPS):
        node = shape.value(host, "registrator_node_name")
        problem = _node_name_problem(node)
        if problem is None and len(node) > MAX_NODE_NAME:
            problem = (
                f"has {len(node)} characters, and HAProxy server names are <node>-<Swarm task ID> "
                f"({SWARM_TASK_ID_LENGTH} characters), which the router reporter reads up to {MAX_SERVER_NAME}: at "
                f"most {MAX_NODE_NAME}"
            )
        if problem:
            errors.append(
                f"host {host}: its registrator's node name {node!r} (registrator_node_name, by default the inventory "
                f"name) {problem}; it is the key segment <prefix>instances/<node>/. Shorten or rename the host, or set "
                f"registrator_node_name."
            )
    for host in shape.groups[ROUTERS]:
        if not shape.value(host, "haproxy_reporter_enabled"):
            continue
        node = shape.value(host, "haproxy_reporter_node_name")
        problem = _node_name_problem(node)
        if problem:
            errors.append(
                f"host {host}: its router reporter's node name {node!r} (haproxy_reporter_node_name, by default the "
                f"inventory name) {problem}; it is the key <prefix>routers/<node>. Rename the host, or set "
                f"haproxy_reporter_node_name."
            )
    return errors


def _node_name_problem(node) -> str | None:
    try:
        parse_name(node, "node")
    except RouteError:
        return "is not 1 to 100 letters, digits, '.', '_' or '-' starting with a letter or digit"
    return None


def _node_list(shape: _Shape, name: str, default: list) -> list:
    servers = shape.groups[CONSUL_SERVERS]
    given = shape.values.get(servers[0], {}) if servers else {}
    nodes = given.get(name, default)
    return [str(node) for node in nodes] if isinstance(nodes, (list, tuple)) else default


def _policy_names(shape: _Shape):
    """The consul role's registrator-<node> and router-<node> policies, which Consul must take (roles/consul/vars)."""
    registrators = _node_list(shape, "consul_registrator_nodes", shape.hosts(*SCHEDULER_GROUPS))
    routers = _node_list(shape, "consul_router_nodes", shape.groups[ROUTERS])
    policies = {}  # node -> its policy names
    for prefix, nodes in (("registrator-", registrators), ("router-", routers)):
        for node in nodes:
            policies.setdefault(node, []).append(prefix + POLICY_NAME_REFUSED.sub("_", node))
    errors, seen = [], {}
    for node, names in policies.items():
        refused = [name for name in names if not _POLICY_NAME.fullmatch(name)]
        if refused:
            errors.append(
                f"host {node}: the consul role makes the ACL {'policy' if len(refused) == 1 else 'policies'} "
                f"{_listed(refused)} for it, and Consul takes a policy name of at most 128 characters. Shorten the "
                f"host's name in the inventory (ansible_host can keep its DNS name)."
            )
        for name in names:
            other = seen.setdefault(name.lower(), (node, name))
            if other[0] != node:
                errors.append(
                    f"hosts {other[0]} and {node}: the consul role makes the ACL policies {other[1]} and {name}, and "
                    f"Consul compares policy names ignoring case, so the second cannot be made; rename one "
                    f"of the hosts."
                )
    return errors


def _consul_node_names(shape: _Shape):
    errors, seen = [], {}
    for host in shape.hosts(*CONSUL_AGENT_GROUPS):
        node = str(shape.value(host, "consul_node_name"))
        other = seen.setdefault(node.lower(), host)
        if other != host:
            errors.append(
                f"hosts {other} and {host} have the Consul node names {shape.value(other, 'consul_node_name')!r} and "
                f"{node!r} (consul_node_name, by default the inventory name), which Consul compares ignoring case: the "
                f"second agent would take the first one's place in the catalog. Rename one, or set "
                f"its consul_node_name."
            )
    return errors


def _common_names(shape: _Shape):
    errors = []
    for host in shape.groups[REGISTRY]:
        if len(host) > MAX_COMMON_NAME and not shape.value(host, "registry_tls_cert"):
            errors.append(
                f"host {host}: the registry role issues the registry's certificate with the inventory name as its "
                f"common name, which X.509 limits to {MAX_COMMON_NAME} characters ({len(host)} here); shorten the "
                f"name, or give registry_tls_cert and registry_tls_key."
            )
    for host in shape.groups[DOCKER_HOSTS]:
        if (
            len(host) > MAX_COMMON_NAME
            and shape.value(host, "docker_host_remote_api")
            and not shape.value(host, "docker_host_tls_cert")
        ):
            errors.append(
                f"host {host}: with docker_host_remote_api the docker_host role issues the engine's certificate with "
                f"the inventory name as its common name, which X.509 limits to {MAX_COMMON_NAME} characters "
                f"({len(host)} here); shorten the name, or give docker_host_tls_cert and docker_host_tls_key."
            )
    return errors


def _registry_address(shape: _Shape):
    registries = shape.groups[REGISTRY]
    if not registries or all(_DOCKER_DOMAIN_PART.fullmatch(part) for part in registries[0].split(".")):
        return []
    host = registries[0]
    return [
        f"host {host}: images are named after the first registry host ({host}:<registry_port>/<image>, "
        f"docs/environments.md), and Docker takes no '_' there, nor a '-' at either end of a part between dots; give "
        f"docker_host_registries an address Docker takes (the registry's IP address or a DNS alias), and name images "
        f"after it."
    ]


# -- ports ----------------------------------------------------------------------------------------------------------
def _port_findings(shape: _Shape):
    errors = []
    for host in shape.hosts(*PLATFORM_GROUPS):
        claims, problems = _claims(shape, host)
        errors.extend(problems)
        errors.extend(_collisions(host, claims))
        if host in shape.groups[ROUTERS]:
            errors.extend(_service_range_overlaps(shape, host, claims))
    return errors, []


@dataclass(frozen=True)
class _Claim:
    name: str
    port: int
    address: str

    def shown(self) -> str:
        return f"{self.name} on {self.address or '0.0.0.0'}"


def _claims(shape: _Shape, host: str):
    """The ports the host's components bind (_Claim), and the errors of values that are no port or address."""
    member_of = {name for name, hosts in shape.groups.items() if host in hosts}
    claims, problems = [], []
    for listener in LISTENERS:
        if not member_of.intersection(listener.groups) or (listener.when and not shape.value(host, listener.when)):
            continue
        port = listener.port if isinstance(listener.port, int) else _port(shape.value(host, listener.port))
        address = _address(shape, host, listener.address)
        if port is None:
            problems.append(
                f"host {host}: {listener.port} is {shape.value(host, listener.port)!r}, not a port number (1 to 65535)."
            )
        elif address is None:
            problems.append(
                f"host {host}: {listener.address} is {shape.value(host, listener.address)!r}, not an address."
            )
        else:
            claims.append(_Claim(listener.name, port, address))
    if DOCKER_HOSTS in member_of and shape.value(host, "docker_host_metrics_address"):
        metrics = shape.value(host, "docker_host_metrics_address")
        address, port = str(metrics).rpartition(":")[::2]
        if _port(port) is None:
            problems.append(f"host {host}: docker_host_metrics_address is {metrics!r}, not <address>:<port>.")
        else:
            claims.append(_Claim("docker_host_metrics_address", _port(port), address))
    return claims, problems


def _port(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,5}", value):
        value = int(value)
    return value if isinstance(value, int) and 0 < value < 65536 else None


def _address(shape: _Shape, host: str, address: str) -> str | None:
    if address == HOST_ADDRESS or address not in VARIABLES:
        return address
    value = shape.value(host, address)
    return value if isinstance(value, str) else None


def _loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def _overlap(one: str, other: str) -> bool:
    """Whether two binds of one port could clash: the same address, a wildcard, or the host's own and not loopback."""
    if one in _WILDCARDS or other in _WILDCARDS or one == other:
        return True
    if HOST_ADDRESS in (one, other):
        return not _loopback(other if one == HOST_ADDRESS else one)
    return False


def _collisions(host: str, claims: list):
    errors = []
    for port in sorted({claim.port for claim in claims}):
        on_port = [claim for claim in claims if claim.port == port]
        clashing = [
            claim
            for claim in on_port
            if any(_overlap(claim.address, other.address) for other in on_port if other != claim)
        ]
        if clashing:
            errors.append(
                f"host {host}: port {port} is bound by {' and '.join(claim.shown() for claim in clashing)}; only one "
                f"can have it: give the other{'' if len(clashing) == 2 else 's'} another port in the host's or its "
                f"group's variables."
            )
    return errors


def _service_range_overlaps(shape: _Shape, host: str, claims: list):
    given = shape.value(host, "haproxy_service_port_range")
    first = _port(given.get("first")) if isinstance(given, dict) else None
    last = _port(given.get("last")) if isinstance(given, dict) else None
    if first is None or last is None or first > last:
        return [f"host {host}: haproxy_service_port_range is {given!r}, not {{first: N, last: M}} with N <= M."]
    bind = shape.value(host, "haproxy_bind_address")
    inside = [claim for claim in claims if first <= claim.port <= last and _overlap(claim.address, str(bind))]
    if not inside:
        return []
    held = ", ".join(f"{claim.port} ({claim.shown()})" for claim in sorted(inside, key=lambda claim: claim.port))
    return [
        f"host {host}: haproxy_service_port_range {first}-{last} holds the port{'' if len(inside) == 1 else 's'} "
        f"{held}, where HAProxy could not bind a route's service port; move the range or the "
        f"port{'' if len(inside) == 1 else 's'}."
    ]
