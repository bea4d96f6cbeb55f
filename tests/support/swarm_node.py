"""A real single-node Docker Swarm for integration tests: one lab host with its own engine.

The host is a container of the lab base image started as lab/tasks/create-hosts.yml
starts every lab host (systemd as PID 1, the capabilities this kernel allows,
its own labelled network and a volume for /var/lib/docker). Inside it the
engine is installed from Debian (docker.io, and busybox-static for the test
images), configured as the Molecule scenarios configure theirs (storage driver
vfs, an address pool clear of the lab network), and made a Swarm manager.

The test reaches the inner engine on a unix socket in a host directory
bind-mounted into the lab host: the same kernel serves both sides, so no TCP
port and no TLS are needed, and only root on this machine can connect.
"""

import json
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import docker

from support.waiting import wait_for

LAB = Path(__file__).resolve().parents[2] / "lab"
BUSYBOX_SCRIPT = LAB / "tasks" / "busybox-image.sh"
TEST_LABEL = "org.dockyard.test"
# Where the bind-mounted socket directory appears inside the lab host.
SOCKET_DIR = "/dockyard-test"
PACKAGES = ("docker.io", "busybox-static")
# As molecule/lab/converge.yml: vfs works on any backing filesystem, and the pool keeps the
# inner networks clear of the lab network.
DAEMON_JSON = {"storage-driver": "vfs", "default-address-pools": [{"base": "10.214.0.0/16", "size": 24}]}
# Debian's docker.service runs `dockerd -H fd:// $DOCKER_OPTS`: one more socket, for the test.
DOCKER_DEFAULTS = f'DOCKER_OPTS="-H unix://{SOCKET_DIR}/docker.sock"\n'


# Debian's docker-registry with a password (JSON is YAML); only its own clients reach it, on the lab host.
REGISTRY_CONFIG = "/etc/docker/registry/config.yml"
REGISTRY_HTPASSWD = "/etc/docker/registry/htpasswd"
REGISTRY_SETTINGS = {
    "version": 0.1,
    "storage": {"filesystem": {"rootdirectory": "/var/lib/docker-registry"}},
    "http": {"addr": "localhost:5000"},
    "auth": {"htpasswd": {"realm": "dockyard-test", "path": REGISTRY_HTPASSWD}},
}
# --force-confold: keep the configuration written before the package (it ships its own).
APT_INSTALL = ("apt-get", "install", "-y", "-qq", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold")


class SwarmNode:
    """start() -> a lab host whose engine is a Swarm manager at base_url; stop() removes everything, always."""

    def __init__(self):
        self.name = f"dockyard-test-{uuid.uuid4().hex[:8]}"  # the container, its network and (with -docker) volume
        self.volume = f"{self.name}-docker"
        self.socket_dir = None
        self.ip = None

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket_dir}/docker.sock"

    def start(self):
        try:
            # A short path: a unix socket's path is limited to 107 bytes.
            self.socket_dir = tempfile.mkdtemp(prefix="dockyard-swarm-")
            self._create_host()
            self._wait_for_systemd()
            self._install_engine()
            self._wait_for_engine()
            self.exec("docker", "swarm", "init", "--advertise-addr", self.ip)
        except BaseException:
            self.stop()
            raise
        return self

    def _create_host(self) -> None:
        image = _run(["bash", str(LAB / "base-image" / "build.sh"), "--print-image"]).stdout.strip()
        if _run(["docker", "image", "inspect", image], check=False).returncode != 0:
            raise RuntimeError(f"the lab base image {image} is not built: run `make base-image`")
        label = f"{TEST_LABEL}={self.name}"
        _run(["docker", "network", "create", "--label", label, self.name])
        _run(["docker", "volume", "create", "--label", label, self.volume])
        # The options of lab/tasks/create-hosts.yml: --privileged is refused by this kernel.
        _run(
            [
                "docker", "run", "--detach", "--name", self.name, "--hostname", "swarm-node",
                "--label", label, "--network", self.name,
                "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
                "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                "--cgroupns", "host", "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
                "--volume", f"{self.volume}:/var/lib/docker", "--volume", f"{self.socket_dir}:{SOCKET_DIR}",
                "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
                "--stop-signal", "SIGRTMIN+3", "--restart", "no",
                image,
            ]
        )  # fmt: skip
        attrs = json.loads(_run(["docker", "inspect", self.name]).stdout)[0]
        self.ip = attrs["NetworkSettings"]["Networks"][self.name]["IPAddress"]

    def _wait_for_systemd(self) -> None:
        def booted():
            # Fails ("Failed to connect to bus") until systemd's bus is up; --wait then waits for the boot.
            result = self.exec("systemctl", "is-system-running", "--wait", check=False)
            return result.stdout.strip() in ("running", "degraded")

        wait_for(booted, timeout=60, interval=0.2, what=f"systemd to boot in {self.name}")

    def _install_engine(self) -> None:
        self.exec("mkdir", "-p", "/etc/docker")
        self.write("/etc/docker/daemon.json", json.dumps(DAEMON_JSON))
        self.write("/etc/default/docker", DOCKER_DEFAULTS)
        install = ["env", "DEBIAN_FRONTEND=noninteractive", *APT_INSTALL]
        if self.exec(*install, *PACKAGES, check=False, timeout=300).returncode != 0:
            # The image's package lists may have gone stale on the mirror.
            self.exec("apt-get", "update", "-qq", timeout=120)
            self.exec(*install, *PACKAGES, timeout=300)

    def _wait_for_engine(self) -> None:
        def answers():
            try:
                with docker.APIClient(base_url=self.base_url, version="auto", timeout=5) as client:
                    return client.ping()
            except (docker.errors.DockerException, OSError):
                return False

        wait_for(answers, timeout=60, interval=0.2, what=f"the engine in {self.name}", detail=self.engine_log)

    def exec(self, *argv, check: bool = True, timeout: float = 60, stdin: str | None = None):
        interactive = ["--interactive"] if stdin is not None else []
        return _run(["docker", "exec", *interactive, self.name, *argv], check=check, timeout=timeout, stdin=stdin)

    def write(self, path: str, text: str) -> None:
        self.exec("sh", "-c", 'cat >"$1"', "write", path, stdin=text)

    def busybox_image(self, image: str, cmd: list, index: str | None = None) -> None:
        """Builds a test image in the inner engine with the lab's own script (lab/tasks/busybox-image.sh)."""
        arguments = [image, json.dumps(cmd)] + ([index] if index is not None else [])
        self.exec("bash", "-c", BUSYBOX_SCRIPT.read_text(), BUSYBOX_SCRIPT.name, *arguments)

    def start_registry(self, username: str, password: str) -> str:
        """Runs Debian's docker-registry in the lab host, behind a password; returns its address, localhost:5000.

        The engine takes a registry on loopback without TLS, as it does the lab's own.
        """
        self.exec("env", "DEBIAN_FRONTEND=noninteractive", *APT_INSTALL, "docker-registry", timeout=300)
        # bcrypt, the one hash the registry's htpasswd takes; Debian's libcrypt has it.
        hashed = self.exec(
            "python3", "-W", "ignore", "-c",
            "import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
            password,
        ).stdout.strip()  # fmt: skip
        self.write(REGISTRY_HTPASSWD, f"{username}:{hashed}\n")
        self.write(REGISTRY_CONFIG, json.dumps(REGISTRY_SETTINGS))
        self.exec("systemctl", "restart", "docker-registry")
        wait_for(
            lambda: (
                self.exec("curl", "-s", "-o", "/dev/null", "http://localhost:5000/v2/", check=False).returncode == 0
            ),
            timeout=30,
            interval=0.2,
            what=f"the registry in {self.name}",
        )
        return "localhost:5000"

    def remove_services(self) -> None:
        """Removes every service, and waits until their containers are gone."""
        services = self.exec("docker", "service", "ls", "--quiet").stdout.split()
        if services:
            self.exec("docker", "service", "rm", *services)
        wait_for(
            lambda: (
                not self.exec(
                    "docker", "ps", "--all", "--quiet", "--filter", "label=com.docker.swarm.service.id"
                ).stdout.strip()
            ),
            timeout=60,
            interval=0.5,
            what=f"the service containers in {self.name} to go",
        )

    def engine_log(self) -> str:
        result = self.exec("journalctl", "--unit", "docker", "--no-pager", "--lines", "60", check=False)
        return result.stdout + result.stderr

    def stop(self) -> None:
        """Removes the host, its network and volume, and the socket directory; each whatever the others did."""
        _run(["docker", "rm", "--force", "--volumes", self.name], check=False)
        _run(["docker", "network", "rm", self.name], check=False)
        _run(["docker", "volume", "rm", self.volume], check=False)
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)


def engine_answers() -> bool:
    """Whether this machine's Docker engine answers (the one that runs the lab host)."""
    try:
        with docker.APIClient(version="auto", timeout=10, **docker.utils.kwargs_from_env()) as client:
            return client.ping()
    except (docker.errors.DockerException, OSError):
        return False


def _run(argv: list, check: bool = True, timeout: float = 60, stdin: str | None = None):
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        shown = " ".join(argv[:4])
        raise RuntimeError(f"{shown} ... failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result
