"""What the verifiers of the shared full-platform scenario share: the lab hosts' names and addresses, commands
on them, the secrets the roles made (kept in Molecule's ephemeral directory), and questions to ZooKeeper and
Consul asked from inside a host."""

import json
import os
import shlex
import subprocess
from pathlib import Path

import testinfra

NODES = ("manager1", "agent1", "agent2", "agent3")
# Coordination (ZooKeeper members, Consul servers) runs on the agents only.
COORDINATION = ("agent1", "agent2", "agent3")
LAB = "dockyard-molecule-cluster"
# The environment is named after Molecule's inventory directory (dockyard_environment's default).
SECRETS = (
    Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
    / "secrets"
    / Path(os.environ.get("MOLECULE_INVENTORY_FILE", "/nonexistent/inventory")).parent.name
)
CONSUL_STORE = SECRETS / "consul" / "consul-dc1"
TOKENS = CONSUL_STORE / "tokens"
TLS = "--cacert /etc/consul.d/tls/ca.pem --cert /etc/consul.d/tls/agent.pem --key /etc/consul.d/tls/agent-key.pem"
CONSUL_CURL = f"curl --silent --show-error --fail {TLS}"


def container(name):
    return f"{LAB}-{name}"


def node_address(name):
    return subprocess.run(
        ["docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container(name)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def node_exec(name, command, check=True, stdin=None):
    interactive = ["--interactive"] if stdin is not None else []
    return subprocess.run(
        ["docker", "exec", *interactive, container(name), "sh", "-c", command],
        check=check,
        capture_output=True,
        text=True,
        input=stdin,
    )


def lab_host(name: str):
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}")


def consul_token(name: str) -> str:
    return json.loads((TOKENS / f"{name}.json").read_text())["SecretID"]


def management_token() -> str:
    return (CONSUL_STORE / "management.token").read_text().strip()


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
