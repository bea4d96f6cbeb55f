"""The Consul cluster: a leader and three voters (the agents), a client agent on the manager, ACLs that deny by default,
gossip encryption and TLS, and secrets that are created only once."""

import json

from cluster import CONSUL_STORE, COORDINATION, NODES, TLS, consul_api, consul_token, lab_host, management_token

testinfra_hosts = ["manager1"]


def test_leader_and_three_voters(host):
    status, body = consul_api(host, "operator/raft/configuration", management_token())
    assert status == 200, body
    servers = json.loads(body)["Servers"]
    assert sorted(server["Node"] for server in servers if server["Voter"]) == sorted(COORDINATION)
    assert len([server for server in servers if server["Leader"]]) == 1


def test_every_node_is_an_alive_member(host):
    status, body = consul_api(host, "agent/members", management_token())
    assert status == 200, body
    members = {member["Name"]: member for member in json.loads(body)}
    assert sorted(members) == sorted(NODES)
    assert all(member["Status"] == 1 for member in members.values()), members
    assert members["manager1"]["Tags"]["role"] == "node", "the manager is a client agent, not a server"


def test_deployer_token_writes_and_reads_kv(host):
    token = consul_token("deployer")
    status, body = consul_api(host, "kv/config/molecule/greeting", token, "PUT", "hello")
    assert (status, body) == (200, "true")
    status, body = consul_api(host, "kv/config/molecule/greeting?raw", token)
    assert (status, body) == (200, "hello")


def test_requests_without_a_token_are_denied(host):
    status, _body = consul_api(host, "kv/config/molecule/anonymous", None, "PUT", "nope")
    assert status == 403
    status, _body = consul_api(host, "kv/config/molecule/greeting?raw")
    assert status in (403, 404)
    status, body = consul_api(host, "kv/config/molecule/greeting?raw", consul_token("renderer"))
    assert (status, body) == (200, "hello")


def test_deployer_cannot_write_instances(host):
    status, _body = consul_api(host, "kv/dockyard/instances/app/manager1/task", consul_token("deployer"), "PUT", "x")
    assert status == 403


def test_keyring_holds_the_one_stored_gossip_key():
    # Keyring operations go to a server's agent.
    host = lab_host(COORDINATION[0])
    key = (CONSUL_STORE / "gossip.key").read_text().strip()
    env = (
        "CONSUL_HTTP_ADDR=https://127.0.0.1:8501 CONSUL_CACERT=/etc/consul.d/tls/ca.pem "
        "CONSUL_CLIENT_CERT=/etc/consul.d/tls/agent.pem CONSUL_CLIENT_KEY=/etc/consul.d/tls/agent-key.pem "
        f"CONSUL_HTTP_TOKEN={management_token()}"
    )
    listing = host.check_output(f"env {env} consul keyring -list")
    assert key in listing
    assert "[1/3]" in listing or "[3/3]" in listing
    keys = {line.split()[0] for line in listing.splitlines() if line.startswith("  ")}
    assert keys == {key}, listing


def test_https_rejects_a_client_that_does_not_trust_the_ca(host):
    untrusting = host.run("curl --silent --show-error https://agent1:8501/v1/status/leader")
    assert untrusting.rc == 60, untrusting.stderr  # peer certificate cannot be authenticated
    no_client_cert = host.run(
        "curl --silent --show-error --cacert /etc/consul.d/tls/ca.pem https://agent1:8501/v1/status/leader"
    )
    assert no_client_cert.rc != 0
    trusted = host.run(f"curl --silent --show-error {TLS} https://agent1:8501/v1/status/leader")
    assert trusted.rc == 0 and ":8300" in trusted.stdout


def test_plain_http_is_off(host):
    assert host.run("curl --silent http://127.0.0.1:8500/v1/status/leader").rc == 7


def test_acls_were_bootstrapped_once(host):
    token = management_token()
    status, body = consul_api(host, "acl/tokens", token)
    assert status == 200, body
    management = [t for t in json.loads(body) if any(p["Name"] == "global-management" for p in t.get("Policies", []))]
    assert len(management) == 1, management
    status, body = consul_api(host, "acl/token/self", token)
    assert status == 200 and json.loads(body)["AccessorID"] == management[0]["AccessorID"]
    # Consul itself refuses a second bootstrap.
    status, _body = consul_api(host, "acl/bootstrap", None, "PUT")
    assert status == 403


def test_snapshot_timer_saves_a_snapshot():
    # Servers save the snapshots; the manager's client agent has none to save.
    host = lab_host(COORDINATION[0])
    assert host.service("consul-snapshot.timer").is_running
    host.check_output("systemctl start consul-snapshot.service")
    assert host.check_output("ls /var/backups/consul").count(".snap") >= 1
