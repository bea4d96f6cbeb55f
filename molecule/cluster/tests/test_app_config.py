"""App configuration from Consul on the whole platform (docs/app-config.md): an app of a busybox image serves a
page its nodes' registrators render from keys seeded with playbooks/seed_config.yml and changed with the
consul_keys module, deployed with playbooks/deploy_app.yml. Tests run in file order and build on each other.
"""

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from cluster import NODES, SECRETS, consul_api, consul_token, node_address, node_exec
from deploying import ROOT, app_options, build_image, containers, deploy, every_id
from load import Load
from support.waiting import wait_for

testinfra_hosts = ["manager1"]

APP = "cfg"
SERVICE_PORT = 10092
# The environment of the scenario's inventory (named after its directory), and a second one.
ENVIRONMENT = SECRETS.name
OTHER_ENVIRONMENT = "staging"
PAGE = """greeting={{ key(prefix ~ "greeting") }}
{% for pair in tree(prefix ~ "features") %}feature {{ pair.key }}={{ pair.value }}
{% endfor %}"""


def inventory() -> str:
    return str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)


def playbook(workdir: Path, name: str, text: str, *flags: str) -> subprocess.CompletedProcess:
    path = workdir / f"{name}.yml"
    path.write_text(text)
    return subprocess.run(
        ["ansible-playbook", "-i", inventory(), str(path), *flags],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def set_keys(workdir: Path, environment: str, data: dict, state: str = "present") -> None:
    """Writes (or deletes) keys of the app's folder with the consul_keys module, from the first master."""
    task = {
        "address": "https://127.0.0.1:8501",
        "ca_path": "/etc/consul.d/tls/ca.pem",
        "client_cert": "/etc/consul.d/tls/agent.pem",
        "client_key": "/etc/consul.d/tls/agent-key.pem",
        "token": "{{ lookup('dockyard.platform.consul_token', 'deployer') }}",
        "prefix": f"config/{environment}/{APP}",
        "state": state,
    }
    task.update({"data": data} if state == "present" else {"keys": list(data)})
    play = {"hosts": "scheduler_masters[0]", "gather_facts": False, "tasks": [{"dockyard.platform.consul_keys": task}]}
    done = playbook(workdir, "set-keys", json.dumps([play]))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def spec(workdir: Path, environment: str | None = None, on_change: str = "signal", **changes) -> dict:
    """The app, with its page rendered from the template PAGE."""
    template = workdir / "page.ctmpl"
    template.write_text(PAGE)
    options = app_options(APP, SERVICE_PORT, {"APP_VERSION": "c1"}, "3s")
    page = {"name": "page", "src": str(template), "destination": "/www/config/page.txt", "on_change": on_change}
    options["config"] = [{**page, "max_drop": "50%"}]
    if environment:
        options["environment"] = environment
    return {**options, **changes}


def pages(routers: list, rounds: int = 6) -> set:
    """The config page as every router serves it, rounds times each, a fresh connection each; fails on a non-200."""
    seen = set()
    for _round in range(rounds):
        for router in routers:
            with urllib.request.urlopen(f"http://{router}:{SERVICE_PORT}/config/page.txt", timeout=5) as answer:
                seen.add(answer.read().decode())
    return seen


def hups(container_ids: set) -> dict:
    found = {}
    for name in NODES:
        for container_id in container_ids & containers(APP)[name]:
            counted = node_exec(name, f"docker exec {container_id} sh -c 'cat /tmp/hups 2>/dev/null'", check=False)
            found[container_id] = len(counted.stdout.split())
    return found


@pytest.fixture(scope="module")
def routers():
    return [node_address(name) for name in NODES]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("app-config")


@pytest.fixture(scope="module")
def deployed(routers, workdir):
    """The app's keys seeded with seed_config.yml, then the app deployed in the inventory's environment."""
    build_image()
    seeded = workdir / "config" / ENVIRONMENT / APP
    (seeded / "features").mkdir(parents=True)
    (seeded / "greeting").write_text("hello from qa")
    for feature in ("a", "b", "c", "d"):
        (seeded / "features" / feature).write_text("on")
    seed = subprocess.run(
        [
            *("ansible-playbook", "-i", inventory(), str(ROOT / "playbooks" / "seed_config.yml")),
            *("-e", f"app={APP}", "-e", f"config_dir={workdir / 'config'}"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert seed.returncode == 0, seed.stdout[-3000:]
    first = deploy(workdir, spec(workdir)).assert_ok()
    yield first
    removed = deploy(workdir, {"name": APP, "state": "absent"}).assert_ok()
    assert any(step["action"] == "revoke" for step in removed.app["steps"]), removed.app["steps"]


def test_every_instance_serves_the_page_rendered_from_the_seeded_keys(deployed, routers):
    assert deployed.apps()[APP]["serving"] == 3
    served = pages(routers)
    assert served == {"greeting=hello from qa\nfeature a=on\nfeature b=on\nfeature c=on\nfeature d=on\n"}, served
    report = deployed.apps()[APP]["config"]
    assert {entry["node"] for entry in report} == set(NODES), report
    assert all(entry["rendered"] and not entry["errors"] and entry["key_index"] for entry in report), report
    assert sum(len(entry["instances"]) for entry in report) == 3


def test_a_changed_key_reaches_every_instance_within_five_seconds_by_sighup_without_a_restart(
    deployed, routers, workdir
):
    before = every_id(containers(APP))
    writing = time.monotonic()
    set_keys(workdir, ENVIRONMENT, {"greeting": "hello again"})
    changed = time.monotonic()
    wait_for(
        lambda: all(page.startswith("greeting=hello again\n") for page in pages(routers, 2)),
        5,
        0.2,
        what="every instance to serve the new greeting",
    )
    served = time.monotonic()
    print(
        f"the new greeting served by every router {served - changed:.1f}s after consul_keys returned"
        f" ({served - writing:.1f}s after ansible-playbook started)"
    )
    assert every_id(containers(APP)) == before, "an instance was restarted"
    counted = hups(before)
    assert len(counted) == 3 and all(count >= 1 for count in counted.values()), counted


def test_a_change_that_empties_a_folder_keeps_the_last_good_page_and_app_info_names_it(deployed, routers, workdir):
    good = pages(routers)
    features = {f"features/{name}": "" for name in "abcd"}
    set_keys(workdir, ENVIRONMENT, features, "absent")

    def refused() -> list:
        report = deploy(workdir, spec(workdir)).assert_ok().apps()[APP]["config"]
        return [entry for entry in report if "page" in entry["errors"]]

    named = wait_for(refused, 30, 1, what="app_info to name the refused render")
    # One entry per node that runs the version; three instances over four nodes.
    assert sum(len(entry["instances"]) for entry in named) == 3, named
    assert all("drop" in entry["errors"]["page"] for entry in named), named
    assert pages(routers) == good
    set_keys(workdir, ENVIRONMENT, dict.fromkeys(features, "on"))


def test_a_broken_template_fails_its_deployment_naming_it_and_the_running_version_keeps_serving(
    deployed, routers, workdir
):
    good = pages(routers)
    before = every_id(containers(APP))
    broken = workdir / "broken.ctmpl"
    broken.write_text("greeting={{ key(prefix ~ 'greeting') \n")
    options = spec(workdir)
    options["config"] = [{**options["config"][0], "src": str(broken)}]
    failed = deploy(workdir, options)
    message = failed.app.get("msg", "")
    assert failed.returncode != 0 and "was not rendered on" in message and "page: " in message, message
    assert "syntax error" in message, message
    assert every_id(containers(APP)) == before
    assert pages(routers) == good


def test_the_app_token_from_an_instance_reads_only_its_own_folder_and_writes_nothing(host, deployed):
    deployer = consul_token("deployer")
    status, _body = consul_api(host, "kv/config/other-env/other/secret", deployer, "PUT", "not yours")
    assert status == 200
    node = next(name for name in NODES if containers(APP)[name])
    instance = sorted(containers(APP)[node])[0]
    token = node_exec(node, f"docker exec {instance} cat /run/dockyard/consul-token").stdout.strip()
    assert token and token != deployer
    own = f"kv/config/{ENVIRONMENT}/{APP}/greeting"
    assert consul_api(host, own, token)[0] == 200
    assert consul_api(host, "kv/config/other-env/other/secret", token)[0] == 403
    assert consul_api(host, f"kv/config/{OTHER_ENVIRONMENT}/{APP}/greeting", token)[0] == 403
    assert consul_api(host, own, token, "PUT", "overwritten")[0] == 403
    definition = f"kv/dockyard/app-config/{APP}--{deployed.apps()[APP]['version']}"
    assert consul_api(host, definition, deployer)[0] == 200
    assert consul_api(host, definition, token)[0] == 403


def test_with_restart_a_change_replaces_instances_one_at_a_time_without_a_failed_request(deployed, routers, workdir):
    deploy(workdir, spec(workdir, on_change="restart")).assert_ok()
    wait_for(lambda: len(every_id(containers(APP))) == 3, 60, 1, what="the drained instances to stop")
    before = every_id(containers(APP))
    load = Load(routers, SERVICE_PORT).start()
    set_keys(workdir, ENVIRONMENT, {"greeting": "hello after restarts"})
    fewest = 3

    def replaced() -> bool:
        nonlocal fewest
        running = every_id(containers(APP))
        fewest = min(fewest, len(running))
        return len(running) == 3 and not running & before

    wait_for(replaced, 180, 0.3, what="every instance to be replaced")
    time.sleep(2)
    result = load.stop()
    print(f"restarted for a change: {result.summary()}; fewest instances running at once: {fewest}")
    assert not result.failures, result.summary()
    assert fewest >= 2, "two instances were down at once"
    assert all(page.startswith("greeting=hello after restarts\n") for page in pages(routers))


def test_the_same_spec_in_another_environment_renders_that_environments_values(deployed, routers, workdir):
    set_keys(workdir, OTHER_ENVIRONMENT, {"greeting": "hello from staging", "features/z": "off"})
    other = deploy(workdir, spec(workdir, environment=OTHER_ENVIRONMENT)).assert_ok()
    assert other.apps()[APP]["serving"] == 3
    assert pages(routers) == {"greeting=hello from staging\nfeature z=off\n"}
