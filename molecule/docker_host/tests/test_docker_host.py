"""Two Docker hosts and the private registry on node-a: the engine runs with the
managed daemon.json, images travel between hosts only through the registry
with credentials and TLS, the remote API needs a client certificate, nothing
restarted on the second converge, and bad input stops the roles early."""

import base64
import json
import os
import uuid
from pathlib import Path

import pytest
import testinfra
from bad_input import play_role, unchanged
from busybox_image import busybox_image

REGISTRY = "node-a:5000"
CERTS_D_CA = f"/etc/docker/certs.d/{REGISTRY}/ca.crt"
# The environment is named after Molecule's inventory directory (dockyard_environment's default).
PKI_DIR = (
    Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
    / "secrets"
    / Path(os.environ.get("MOLECULE_INVENTORY_FILE", "/nonexistent/inventory")).parent.name
    / "pki"
)
START_MARKER = "/var/lib/dockyard-molecule-starts"


def lab_host(name):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


@pytest.fixture(scope="module")
def node_a():
    return lab_host("node-a")


@pytest.fixture(scope="module")
def node_b():
    return lab_host("node-b")


@pytest.fixture(scope="module")
def pushed_image(node_a):
    """An image built on node-a and pushed with the credentials the role stored."""
    image = f"{REGISTRY}/dockyard/hello:git-{uuid.uuid4().hex[:8]}"
    node_a.check_output(busybox_image(image, ["/bin/echo", "hello from node-a"]))
    push = node_a.run("docker push %s", image)
    assert push.rc == 0, push.stderr
    return image


def test_engine_runs_with_the_managed_daemon_json(host):
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert daemon["storage-driver"] == "vfs"
    assert daemon["default-address-pools"] == [{"base": "10.214.0.0/16", "size": 24}]
    assert daemon["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert "insecure-registries" not in daemon
    assert host.service("docker").is_running
    assert host.service("docker").is_enabled
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert (info["Driver"], info["LoggingDriver"]) == ("vfs", "json-file")
    assert host.file(CERTS_D_CA).exists


def test_docker_group_users_and_prune_timer(host):
    assert "docker" in host.user("deploy").groups
    assert host.service("docker-prune.timer").is_enabled
    unit = host.file("/etc/systemd/system/docker-prune.service").content_string
    assert "--filter until=12h" in unit


def test_registry_runs_with_tls_auth_and_gc_timer(node_a):
    assert node_a.service("docker-registry").is_running
    assert node_a.service("docker-registry-gc.timer").is_enabled
    htpasswd = node_a.file("/etc/docker/registry/htpasswd")
    assert htpasswd.mode == 0o640
    assert htpasswd.content_string.startswith("pusher:$2")  # bcrypt, never the clear password


def test_image_pushed_on_one_host_is_pulled_and_run_on_the_other(node_b, pushed_image):
    pull = node_b.run("docker pull %s", pushed_image)
    assert pull.rc == 0, pull.stderr
    assert node_b.check_output("docker run --rm %s", pushed_image) == "hello from node-a"


def test_anonymous_push_is_refused(node_b, pushed_image):
    anonymous = pushed_image.rsplit(":", 1)[0] + ":anonymous"
    node_b.check_output("docker pull -q %s && docker tag %s %s", pushed_image, pushed_image, anonymous)
    push = node_b.run("DOCKER_CONFIG=$(mktemp -d) docker push %s", anonymous)
    assert push.rc != 0
    assert "no basic auth credentials" in push.stderr or "unauthorized" in push.stderr.lower(), push.stderr
    status = node_b.check_output(
        "curl -s -o /dev/null -w '%%{http_code}' --cacert %s https://%s/v2/", CERTS_D_CA, REGISTRY
    )
    assert status == "401"


def test_pull_over_plain_http_is_refused(node_b, pushed_image):
    repository, tag = pushed_image.split("/", 1)[1].rsplit(":", 1)
    url = f"http://{REGISTRY}/v2/{repository}/manifests/{tag}"
    plain = node_b.run("curl -s -u pusher:lab-only-pusher-secret -o /dev/null -w '%%{http_code}' %s", url)
    assert plain.stdout != "200"
    assert plain.stdout == "400"  # the registry answers plain HTTP on its TLS port with 400 only
    secure = node_b.check_output(
        "curl -s -u pusher:lab-only-pusher-secret -o /dev/null -w '%%{http_code}' --cacert %s %s",
        CERTS_D_CA,
        url.replace("http://", "https://"),
    )
    assert secure == "200"


def test_remote_api_needs_a_client_certificate(node_a, node_b, pushed_image):
    node_b.check_output(
        "docker rm -f remote-api-probe >/dev/null; docker run -d --name remote-api-probe %s sleep 600", pushed_image
    )
    node_a.check_output("install -d -m 0700 /tmp/operator")
    for name in ("ca.crt", "client-cert.pem", "client-key.pem"):
        payload = base64.b64encode((PKI_DIR / name).read_bytes()).decode()
        node_a.check_output("echo %s | base64 -d > /tmp/operator/%s", payload, name)
    api = "https://node-b:2376/containers/json"
    without = node_a.run("curl -sS --cacert /tmp/operator/ca.crt %s", api)
    assert without.rc != 0, without.stdout
    with_cert = node_a.check_output(
        "curl -sS --cacert /tmp/operator/ca.crt --cert /tmp/operator/client-cert.pem"
        " --key /tmp/operator/client-key.pem %s",
        api,
    )
    assert "/remote-api-probe" in [name for container in json.loads(with_cert) for name in container["Names"]]
    plain = node_a.run("curl -sS http://node-b:2375/containers/json")
    assert plain.rc != 0
    node_a.check_output("rm -rf /tmp/operator")


def test_nothing_restarted_since_the_first_converge(host):
    recorded = host.file(START_MARKER).content_string.strip()
    now = host.check_output(
        "systemctl show docker.service docker-registry.service -p Id -p MainPID -p ExecMainStartTimestamp"
    )
    assert now == recorded
    assert "MainPID=0" not in now.split("\n\n")[0]


# Each bad input must stop its role in the preflight, with a message naming the
# variable, before any task changes node-a (molecule/shared/bad_input.py).
WATCHED = "/etc/docker/daemon.json /etc/docker/registry/config.yml /etc/systemd/system/docker-prune.*"
PWNED = "/tmp/bad-input-pwned"
BAD_INPUTS = {
    "docker_host_log_driver": ("docker_host", {"docker_host_log_driver": "gelf"}),
    "docker_host_live_restore": ("docker_host", {"docker_host_live_restore": True, "docker_host_swarm_mode": True}),
    "registry_users": ("registry", {"registry_users": [{"name": "pusher", "password": ""}]}),
    "docker_host_registries": (
        "docker_host",
        {"docker_host_registries": [{"address": REGISTRY, "username": "pusher", "password": ""}]},
    ),
    "docker_host_prune_age": ("docker_host", {"docker_host_prune_age": f"24h\nExecStartPre=/bin/touch {PWNED}"}),
    "docker_host_prune_schedule": (
        "docker_host",
        {"docker_host_prune_schedule": f"daily\nExecStartPre=/bin/touch {PWNED}"},
    ),
    "docker_host_daemon_extra.hosts": (
        "docker_host",
        {"docker_host_daemon_extra": {"hosts": ["fd://", "tcp://0.0.0.0:2375"]}},
    ),
    "docker_host_daemon_extra.tlsverify": ("docker_host", {"docker_host_daemon_extra": {"tlsverify": False}}),
}


@pytest.mark.parametrize("variable", list(BAD_INPUTS))
def test_bad_input_stops_the_roles_before_any_change(node_a, tmp_path, variable):
    role, variables = BAD_INPUTS[variable]
    with unchanged([node_a], WATCHED):
        run = play_role(role, tmp_path, variables=variables, hosts="node-a")
    run.assert_refused(variable)
    run.assert_changed_nothing()
    assert "lab-only-pusher-secret" not in run.output
    assert not node_a.file(PWNED).exists
    test_nothing_restarted_since_the_first_converge(node_a)
