"""The lab host boots systemd and runs a container in its own Docker engine."""


def test_systemd_is_pid_one_and_running(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state == "running", host.run("systemctl --failed --no-pager").stdout


def test_inner_engine_uses_the_lab_settings(host):
    info = host.check_output("docker info --format '{{.Driver}}'")
    assert info == "vfs"


def test_container_answers_through_its_published_port(host):
    body = host.check_output("curl --silent --fail http://127.0.0.1:8080/")
    assert body == "served by the lab"
