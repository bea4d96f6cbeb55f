"""Helpers shared by the coordination scenario's tests: reach other lab hosts,
read the controller-side secret store, ask ZooKeeper and Consul questions from
inside a host."""

import json
import os
import shlex
from pathlib import Path

import testinfra

MEMBERS = ["node1", "node2", "node3"]
DATACENTER = "dc1"
TLS = "--cacert /etc/consul.d/tls/ca.pem --cert /etc/consul.d/tls/agent.pem --key /etc/consul.d/tls/agent-key.pem"


def lab_host(name: str):
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}")


def store() -> Path:
    """The environment's secrets directory: dockyard_environment defaults to the inventory directory's name."""
    return (
        Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
        / "secrets"
        / Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent.name
    )


def consul_store() -> Path:
    return store() / "consul" / f"consul-{DATACENTER}"


def consul_token(name: str) -> str:
    return json.loads((consul_store() / "tokens" / f"{name}.json").read_text())["SecretID"]


def management_token() -> str:
    return (consul_store() / "management.token").read_text().strip()


def four_letter_word(host, member: str, word: str) -> str:
    """Ask a member's client port a four-letter word from inside `host`."""
    script = f"exec 3<>/dev/tcp/{member}/2181 && printf {word} >&3 && timeout 5 cat <&3"
    return host.run(f"bash -c {shlex.quote(script)}").stdout


def zk_mode(host, member: str) -> str:
    for line in four_letter_word(host, member, "srvr").splitlines():
        if line.startswith("Mode: "):
            return line.split(": ", 1)[1].strip()
    return "not serving"


def consul_api(host, path: str, token: str | None = None, method: str = "GET", data: str | None = None):
    """Call a Consul HTTPS API from inside `host`; returns (status, body)."""
    command = f"curl --silent --show-error --output /tmp/consul-body --write-out '%{{http_code}}' {TLS} -X {method}"
    if token:
        command += f" -H {shlex.quote('X-Consul-Token: ' + token)}"
    if data is not None:
        command += f" --data-binary {shlex.quote(data)}"
    command += f" {shlex.quote('https://127.0.0.1:8501/v1/' + path)}"
    status = host.check_output(command)
    return int(status), host.file("/tmp/consul-body").content_string
