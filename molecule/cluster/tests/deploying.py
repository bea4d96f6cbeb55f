"""Deploying apps on the cluster as an operator does: playbooks/deploy_app.yml run from the controller against
the scenario's inventory, its result read from Ansible's JSON callback; the test app's image; the apps' containers."""

import contextlib
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

from cluster import NODES, container, node_exec

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOK = ROOT / "playbooks" / "deploy_app.yml"
IMAGE_DIR = Path(__file__).with_name("app-image")
IMAGE = "lab/cluster-app:2"


def build_image() -> None:
    """The test app's image on every node (app-image/build.sh; nothing to do where it exists)."""
    for name in NODES:
        subprocess.run(["docker", "cp", str(IMAGE_DIR), f"{container(name)}:/var/tmp/"], check=True)
        node_exec(name, f"bash /var/tmp/app-image/build.sh {IMAGE}")


def app_options(name: str, service_port: int, env: dict, drain_timeout: str) -> dict:
    """deploy_app.yml's options for three instances of the test app on port 80, checked on /cgi-bin/health and
    routed by name.dockyard.test and service_port."""
    return {
        "name": name,
        "image": IMAGE,
        "instances": 3,
        "cpus": 0.1,
        "mem": 32,
        "container_port": 80,
        "hosts": [f"{name}.dockyard.test"],
        "service_port": service_port,
        "env": env,
        "health": {"path": "/cgi-bin/health", "interval": "1s", "grace_period": "3s", "failures": 3},
        "upgrade": {"drain_timeout": drain_timeout},
        "deadline": "5m",
    }


class PlaybookRun:
    """One run of a playbook, read from Ansible's JSON callback (ANSIBLE_STDOUT_CALLBACK=ansible.posix.json)."""

    def __init__(self, done: subprocess.CompletedProcess, duration: float):
        self.returncode = done.returncode
        self.duration = duration
        self.output = (done.stdout + done.stderr)[-4000:]
        try:
            self.report = json.loads(done.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"ansible-playbook gave no report: {self.output}") from None


class Deployment(PlaybookRun):
    """One run of deploy_app.yml."""

    def __init__(self, done: subprocess.CompletedProcess, duration: float):
        super().__init__(done, duration)
        self.results = {
            task["task"]["name"]: result
            for play in self.report.get("plays", [])
            for task in play["tasks"]
            for result in task["hosts"].values()
        }
        self.app = self.results.get("Deploy the app, waiting until it serves (or is rolled back)", {})
        self.info = self.results.get("Read the app's versions and history", {})

    def assert_ok(self) -> "Deployment":
        assert self.returncode == 0, self.app.get("msg") or self.output
        return self

    def apps(self) -> dict:
        return {entry["name"]: entry for entry in self.info.get("apps", [])}


def deploy(workdir: Path, options: dict, *flags: str) -> Deployment:
    variables = workdir / f"deploy-{uuid.uuid4().hex[:8]}.json"
    variables.write_text(json.dumps({"deploy_app": options}))
    command = ["ansible-playbook", "-i", str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)]
    command += [str(PLAYBOOK), "-e", f"@{variables}", *flags]
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, env=env)
    return Deployment(done, time.monotonic() - started)


def containers(app: str) -> dict:
    """{node: set of container IDs of the app running there}."""
    found = {}
    for name in NODES:
        listed = node_exec(name, f"docker ps --quiet --no-trunc --filter label=org.dockyard.app={app}").stdout
        found[name] = set(listed.split())
    return found


def every_id(by_node: dict) -> set:
    return set().union(*by_node.values())


@contextlib.contextmanager
def running_app(workdir: Path, name: str, service_port: int, version: str):
    """Three instances of the test app (APP_VERSION version) for the block, removed afterwards; yields workdir."""
    build_image()
    deploy(workdir, app_options(name, service_port, {"APP_VERSION": version}, "3s")).assert_ok()
    try:
        yield workdir
    finally:
        deploy(workdir, {"name": name, "state": "absent"}).assert_ok()
