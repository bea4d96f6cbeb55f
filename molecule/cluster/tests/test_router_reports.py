"""Every router publishes what its HAProxy serves: each node's key dockyard/routers/<node>, written by its
reporter with its own router-<node> token, reads back through the engine's reader and shows the demo app's
three servers UP in app_web, fresh (within its heartbeat)."""

import base64
import json
import time

from ansible_collections.dockyard.platform.plugins.module_utils.router.report import read_routers, waiting_for
from support.waiting import wait_for
from test_routing import APP, CONSUL_CURL, NODES, TOKENS, addresses, app  # noqa: F401 pylint: disable=unused-import

testinfra_hosts = ["manager1"]


class ConsulOnManager:
    """The reader's ConsulClient.kv_recurse, answered by curl on manager1 (Consul's HTTPS port is local there)."""

    def __init__(self, host):
        self.host = host
        self.token = json.loads((TOKENS / "deployer.json").read_text())["SecretID"]

    def get(self, prefix):
        answer = self.host.run(
            f"{CONSUL_CURL} --header 'X-Consul-Token: {self.token}' 'https://127.0.0.1:8501/v1/kv/{prefix}?recurse'"
        )
        return json.loads(answer.stdout) if answer.rc == 0 else []

    def kv_recurse(self, prefix):
        return {entry["Key"]: (base64.b64decode(entry["Value"] or ""), None) for entry in self.get(prefix)}


def app_addresses(consul):
    """(addr, port) of every instance of the app, as the registrators wrote them."""
    found = set()
    for key, (value, _session) in consul.kv_recurse("dockyard/instances/").items():
        if key.split("/")[3:4] == [APP]:
            instance = json.loads(value)
            found.add((instance["addr"], instance["port"]))
    return found


def test_every_router_reports_the_apps_servers_up(host, app):  # noqa: F811
    consul = ConsulOnManager(host)
    expected = wait_for(lambda: len(app_addresses(consul)) == 3 and app_addresses(consul), 60, 1, what="3 instances")

    def waiting():
        reports, skipped = read_routers(consul, "dockyard/")
        assert skipped == []
        return waiting_for(reports, f"app_{APP}", expected, routers=NODES, now=time.time())

    wait_for(lambda: not waiting(), 30, 1, what="every router reporting the app's servers UP", detail=waiting)
    reports, _skipped = read_routers(consul, "dockyard/")
    assert sorted(reports) == sorted(NODES)
    for report in reports.values():
        assert report.error == "" and report.reloads is not None
