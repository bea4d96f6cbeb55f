"""Every host: the services run, and the second converge restarted nothing. ZooKeeper and the Consul servers run
on the coordination nodes; every other node runs a Consul client agent."""

from cluster import COORDINATION


def services(host) -> list[str]:
    return ["zookeeper", "consul"] if host.backend.get_hostname() in COORDINATION else ["consul"]


def show(host) -> str:
    return host.check_output(
        "systemctl show --property=ActiveEnterTimestampMonotonic,MainPID " + " ".join(services(host))
    )


def test_services_run_and_start_at_boot(host):
    for name in services(host):
        assert host.service(name).is_running
        assert host.service(name).is_enabled


def test_second_converge_restarted_nothing(host):
    # converge.yml records start times and PIDs after the first converge only.
    first = host.file("/var/lib/dockyard-molecule-started").content_string.strip()
    assert first == show(host).strip()


def test_secrets_are_not_world_readable(host):
    for path in ("/etc/consul.d/dockyard.json", "/etc/consul.d/tls/agent-key.pem"):
        assert host.file(path).mode == 0o640
        assert host.file(path).group == "consul"
    if host.backend.get_hostname() in COORDINATION:
        assert host.file("/etc/default/consul-snapshot").mode == 0o600
