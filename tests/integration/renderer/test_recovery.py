"""Must show: the renderer's watches recover fast and its status tells the truth.

- A truncated answer costs a retry, never the watch: the failure is counted
  while it lasts and health returns to ok once answers are whole again.
- SIGHUP applies the whole configuration: a fixed template drops the failing
  watch and its failures; a new Consul address (and token) is read from.
- After a Consul outage of any length, the first change renders within 5 s of
  Consul answering again; after a snapshot restore (indexes go backwards), a
  change renders within block_wait.
- Reads are stale reads, bounded by max_stale.

Requests go through tests/integration/renderer/consul_proxy.py where a test
needs to see them or to break them.
"""

import json
import signal
import time
import urllib.error
import urllib.request

import pytest
from consul_proxy import ConsulProxy
from renderer_helpers import consul_settings, wait_for
from support.consul_agent import MASTER_TOKEN, ConsulAgent

FIRST_RENDER_AFTER_OUTAGE = 5.0
FAST_RETRIES = {"backoff": "100ms", "max_backoff": "500ms"}


@pytest.fixture(scope="module")
def recovery_agent(tmp_path_factory):
    """One Consul server of this module's own, stopped and restored by its tests."""
    agent = ConsulAgent(tmp_path_factory.mktemp("consul-recovery"))
    agent.start()
    yield agent
    agent.stop()


@pytest.fixture
def proxy(consul_agent):
    proxy = ConsulProxy(consul_agent.address)
    yield proxy
    proxy.close()


def health(daemon) -> tuple:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{daemon.status_port}/v1/health", timeout=5) as answer:
            return answer.status, json.loads(answer.read())["status"]
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())["status"]


def consecutive_failures(daemon) -> int:
    """The status's count, or 0 while the daemon does not answer yet."""
    try:
        return daemon.status()["consul"]["consecutive_failures"]
    except OSError:
        return 0


def one_key(name: str, live, consul: dict, **settings) -> dict:
    return {
        "consul": consul,
        "wait": {"min": 0.05, "max": 0.2},
        "templates": [{"name": name, "contents": f"{{{{ key('{name}/value') }}}}\n", "destination": str(live)}],
        **settings,
    }


def reload(daemon, config: dict) -> None:
    daemon.config_path.write_text(json.dumps({**daemon.config, **config}))
    daemon.signal(signal.SIGHUP)


def test_a_truncated_answer_is_counted_and_the_watch_recovers(consul_agent, proxy, renderer, tmp_path):
    consul_agent.put("truncated/value", "before")
    live = tmp_path / "truncated.conf"
    daemon = renderer(one_key("truncated", live, {"address": proxy.address}, watch=FAST_RETRIES))
    daemon.wait_ready()

    proxy.truncate.add("/v1/kv/truncated/value")
    consul_agent.put("truncated/value", "during")  # the open blocking query answers, cut short
    failing = wait_for(
        lambda: (consul := daemon.status()["consul"])["consecutive_failures"] >= 3 and consul,
        10,
        what="failed queries to be counted",
    )
    assert failing["errors"] >= 3 and failing["watches"] == 1
    code, reason = health(daemon)
    assert (code, reason.split(" (")[0]) == (429, "consul queries failing")
    assert live.read_text() == "before\n"
    assert daemon.log_lines("query failed, retrying", "IncompleteRead")

    proxy.truncate.clear()
    wait_for(lambda: live.read_text() == "during\n", 5, what="the change once answers are whole again")
    wait_for(lambda: daemon.status()["consul"]["consecutive_failures"] == 0, 5, what="the failures to clear")
    assert health(daemon) == (200, "ok")
    # Every read is a stale read (max_stale defaults to 2s), and blocks within block_wait (60s by default).
    blocking = [q for q in proxy.queries_of("/v1/kv/truncated/value") if "index" in q]
    assert blocking and all("stale" in q and q["wait"] == "56s" for q in blocking)
    assert daemon.alive()


def test_sighup_with_a_fixed_template_drops_the_failing_watch_and_its_failures(consul_agent, proxy, renderer, tmp_path):
    consul_agent.put("fixed/value", "good")
    consul_agent.put("broken/value", "never whole")
    proxy.truncate.add("/v1/kv/broken/value")
    live = tmp_path / "fixed.conf"
    config = one_key("fixed", live, {"address": proxy.address}, watch=FAST_RETRIES)
    config["templates"][0]["contents"] = "{{ key('broken/value') }}\n"
    daemon = renderer(config)
    wait_for(lambda: consecutive_failures(daemon) >= 2, 10, what="the broken read to fail")
    assert health(daemon)[0] == 429

    reload(daemon, {"templates": [{**config["templates"][0], "contents": "{{ key('fixed/value') }}\n"}]})
    wait_for(lambda: live.exists() and live.read_text() == "good\n", 10, what="the fixed template's render")
    wait_for(lambda: health(daemon) == (200, "ok"), 5, what="health to be ok", detail=lambda: health(daemon))
    consul = daemon.status()["consul"]
    assert (consul["consecutive_failures"], consul["watches"]) == (0, 1)


def test_sighup_with_a_new_consul_address_and_token_reads_from_there(
    consul_agent, consul_acl_agent, renderer, tmp_path
):
    consul_agent.put("moved/value", "first agent")
    consul_acl_agent.put("moved/value", "second agent")
    live = tmp_path / "moved.conf"
    daemon = renderer(one_key("moved", live, consul_settings(consul_agent), watch={"block_wait": "5s"}))
    daemon.wait_ready()
    assert live.read_text() == "first agent\n"

    second = {"address": consul_acl_agent.url, "token": MASTER_TOKEN}
    reload(daemon, {"consul": second, "watch": {"block_wait": "10s", "max_stale": "1s"}, "log_level": "info"})
    wait_for(lambda: live.read_text() == "second agent\n", 10, what="a read from the new address")
    consul_acl_agent.put("moved/value", "changed in the second only")
    wait_for(lambda: live.read_text() == "changed in the second only\n", 10, what="the change on the new address")
    status = daemon.status()
    assert status["consul"]["address"] == consul_acl_agent.url
    assert status["consul"]["max_stale"] == 1
    assert (status["watch"]["block_wait"], status["log_level"]) == (10, "info")
    assert health(daemon) == (200, "ok")
    assert MASTER_TOKEN not in daemon.log()


@pytest.mark.slow
def test_first_change_after_a_long_outage_renders_within_5s(recovery_agent, renderer, tmp_path):
    agent = recovery_agent
    agent.put("outage/value", "before")
    live = tmp_path / "outage.conf"
    daemon = renderer(one_key("outage", live, consul_settings(agent)))  # the default back-off: what ships
    daemon.wait_ready()

    agent.stop()
    wait_for(lambda: daemon.status()["consul"]["consecutive_failures"] > 0, 10, what="the outage to be noticed")
    time.sleep(60)
    failures = daemon.status()["consul"]["consecutive_failures"]
    assert failures > 12, "more retries than consul-template's give-up point"  # with max_backoff 3s: about 25
    assert live.read_text() == "before\n"

    agent.start()  # returns once the agent answers KV reads again
    back = time.monotonic()
    agent.put("outage/value", "after")
    wait_for(lambda: live.read_text() == "after\n", 10, 0.01, "the first render after the outage")
    elapsed = time.monotonic() - back
    print(f"first change after a 60s outage rendered {elapsed:.2f}s after Consul answered again")
    assert elapsed <= FIRST_RENDER_AFTER_OUTAGE
    wait_for(lambda: health(daemon) == (200, "ok"), 5, what="health to be ok")


def test_a_snapshot_restore_renders_within_block_wait(recovery_agent, renderer, tmp_path):
    # The restore takes the data, and Consul's index, back: a watch blocked at the higher index is not woken by
    # it, so it must notice the index going backwards when its query returns, within block_wait.
    agent = recovery_agent
    block_wait = 5.0
    agent.put("restore/value", "saved")
    live = tmp_path / "restore.conf"
    daemon = renderer(one_key("restore", live, consul_settings(agent), watch={"block_wait": block_wait}))
    daemon.wait_ready()
    snapshot, _headers = agent.request("GET", "/v1/snapshot", raw=True)
    for number in range(30):
        agent.put("restore/noise", str(number))
    agent.put("restore/value", "written after the snapshot")
    wait_for(lambda: live.read_text() == "written after the snapshot\n", 5, what="the write before the restore")
    before = int(agent.request("GET", "/v1/kv/restore/value")[1]["X-Consul-Index"])

    agent.request("PUT", "/v1/snapshot", snapshot)
    restored = time.monotonic()
    assert int(agent.request("GET", "/v1/kv/restore/value")[1]["X-Consul-Index"]) < before, "index went backwards"
    wait_for(lambda: live.read_text() == "saved\n", block_wait + 5, 0.05, "the restored value")
    elapsed = time.monotonic() - restored
    print(f"snapshot restore rendered in {elapsed:.2f}s (block_wait {block_wait}s)")
    assert elapsed <= block_wait
    agent.put("restore/value", "changed after the restore")
    wait_for(lambda: live.read_text() == "changed after the restore\n", 5, what="a change after the restore")
