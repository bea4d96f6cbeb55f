# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the app modules share: their Swarm and ZooKeeper options, and the deployer those options open.

The options are documented once, in the doc fragment dockyard.platform.app
(and dockyard.platform.consul for Consul's).
"""

from __future__ import annotations

import contextlib
import re

from ._consul import CONNECTION_ARGUMENT_SPEC as CONSUL_ARGUMENT_SPEC
from ._consul import client_from_params
from .app.deployer import Deployer
from .app.ledger import Session, parse_settings
from .app.swarm import SwarmClient
from .daemon.config import ConfigError
from .daemon.routing import parse_prefix

CONNECTION_ARGUMENT_SPEC = dict(
    docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
    zookeeper_hosts=dict(type="str", required=True),
    zookeeper_chroot=dict(type="str", default="/dockyard"),
    zookeeper_username=dict(type="str"),
    zookeeper_password=dict(type="str", no_log=True),
    prefix=dict(type="str", default="dockyard/"),
    **CONSUL_ARGUMENT_SPEC,
)
CONNECTION_REQUIRED_TOGETHER = [("zookeeper_username", "zookeeper_password"), ("client_cert", "client_key")]

# The engine is the local manager's: a TCP address would need its own TLS options, and the module runs on a manager.
_UNIX_SOCKET = re.compile(r"unix:///[A-Za-z0-9_./-]{1,200}")


def docker_url(value) -> str:
    if not isinstance(value, str) or not _UNIX_SOCKET.fullmatch(value) or "/../" in value:
        raise ConfigError(f"docker_host: expected a local socket such as unix:///var/run/docker.sock, got {value!r}")
    return value


@contextlib.contextmanager
def deployer_from_params(params, **options):
    """A Deployer on the module's engine, Consul and ZooKeeper session, closed afterwards; options go to Deployer.

    Raises ConfigError (a bad option), ledger.LedgerError (ZooKeeper unreachable, named) or ConsulError.
    """
    swarm = SwarmClient(docker_url(params["docker_host"]))
    settings = parse_settings(
        params["zookeeper_hosts"],
        None if "/" in params["zookeeper_hosts"] else params["zookeeper_chroot"],
        username=params["zookeeper_username"],
        password=params["zookeeper_password"],
    )
    prefix = parse_prefix(params["prefix"], "prefix")
    consul = client_from_params(params)
    session = Session(settings).open()
    try:
        yield Deployer(swarm, consul, session, prefix, **options)
    finally:
        session.close()
        swarm.close()
