"""The renderer daemon renders from Consul KV, reloads, and reports healthy to Consul."""

import json

from support.waiting import wait_for

LIVE = "/etc/molecule/greeting.conf"


def test_daemon_runs_under_systemd(host):
    service = host.service("dockyard-renderer")
    assert service.is_running
    assert service.is_enabled


def test_configuration_is_private(host):
    config = host.file("/etc/dockyard/renderer/renderer.json")
    assert config.mode == 0o600
    assert json.loads(config.content_string)["templates"][0]["source"] == "/etc/dockyard/renderer/templates/greeting.j2"


def test_first_render(host):
    wait_for(lambda: host.file(LIVE).exists, 20, 0.25, "the first render")
    assert host.file(LIVE).content_string == "greeting=hello\nbackend a 10.0.0.1:80\nbackend b 10.0.0.2:80\n"
    assert host.file(LIVE).mode == 0o644
    assert "reloaded" in host.file("/var/tmp/renderer-reloads").content_string


def test_a_key_change_renders_and_reloads(host):
    reloads_before = host.file("/var/tmp/renderer-reloads").content_string.count("reloaded")
    host.run_expect([0], "curl -sf -X PUT -d changed http://127.0.0.1:8500/v1/kv/molecule/greeting")
    wait_for(lambda: "greeting=changed\n" in host.file(LIVE).content_string, 10, 0.25, "the changed key rendered")
    assert host.file("/var/tmp/renderer-reloads").content_string.count("reloaded") == reloads_before + 1


def test_dropping_every_backend_at_once_is_refused(host):
    before = host.file(LIVE).content_string
    host.run_expect([0], "curl -sf -X DELETE 'http://127.0.0.1:8500/v1/kv/molecule/backends?recurse'")
    wait_for(
        lambda: "render refused" in (host_status(host)["templates"][0]["last_error"] or ""),
        10,
        0.25,
        "the render refused",
        detail=lambda: host_status(host)["templates"][0],
    )
    assert host.file(LIVE).content_string == before


def host_status(host):
    return json.loads(host.check_output("curl -s http://127.0.0.1:8559/v1/status"))


def test_status_endpoint_and_consul_check(host):
    status = host_status(host)
    assert status["templates"][0]["name"] == "greeting"
    assert "dockyard_renderer_renders_total" in host.check_output("curl -s http://127.0.0.1:8559/metrics")

    def check_state():
        checks = json.loads(host.check_output("curl -s http://127.0.0.1:8500/v1/agent/checks"))
        return {check["Name"]: check["Status"] for check in checks.values()}

    # The max_drop refusal above puts the renderer in error: Consul shows it critical.
    wait_for(
        lambda: check_state().get("dockyard-renderer") == "critical",
        20,
        0.25,
        "the renderer's Consul check critical",
        detail=check_state,
    )
    host.run_expect([0], "curl -sf -X PUT -d 10.0.0.1:80 http://127.0.0.1:8500/v1/kv/molecule/backends/a")
    host.run_expect([0], "curl -sf -X PUT -d 10.0.0.2:80 http://127.0.0.1:8500/v1/kv/molecule/backends/b")
    wait_for(
        lambda: check_state().get("dockyard-renderer") == "passing",
        20,
        0.25,
        "the renderer's Consul check passing",
        detail=check_state,
    )
