"""Where the router's request log goes, and which requests it holds (haproxy_log_target, haproxy_log_requests):
the role's template rendered by the real renderer and run by a real HAProxy on loopback. A syslog server is a UDP
socket of the test's own; journald is HAProxy's standard output, which the test reads from the process's log."""

import http.client
import socket
import time

import pytest
from haproxy_helpers import wait_for


class SyslogServer:
    """A UDP socket that keeps every datagram it gets, as text."""

    def __init__(self):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.lines = []

    def read(self) -> list:
        while True:
            try:
                self.lines.append(self.socket.recv(65536).decode(errors="replace"))
            except TimeoutError:
                return self.lines

    def close(self):
        self.socket.close()


@pytest.fixture
def syslog():
    server = SyslogServer()
    yield server
    server.close()


def get(port: int, path: str) -> int:
    """The status of GET path for shop.test, or 0 while nothing listens (the bootstrap configuration)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": "shop.test"})
        answer = connection.getresponse()
        answer.read()
        return answer.status
    except ConnectionRefusedError:
        return 0
    finally:
        connection.close()


def serve_then_fail(proxy, backends):
    """A request answered 200 (/served), then one that fails with 503 once the only instance is gone (/failed)."""
    [instance] = backends("shop-1")
    proxy.put_route("shop", {"hosts": ["shop.test"]})
    proxy.put_instance("shop", "node1", "t1", instance.port)
    wait_for(lambda: get(proxy.http_port, "/probe") == 200, 15, what="the route to answer")
    assert get(proxy.http_port, "/served") == 200
    instance.stop()
    wait_for(lambda: get(proxy.http_port, "/failed") == 503, 15, what="the route to fail without its instance")


def lines_with(lines, path):
    return [line for line in lines if f"GET {path} " in line]


def test_errors_mode_sends_failed_requests_to_the_syslog_server_and_leaves_served_ones_out(router, backends, syslog):
    proxy = router(haproxy_log_target=f"127.0.0.1:{syslog.port}", haproxy_log_facility="local3")
    assert f"log 127.0.0.1:{syslog.port} local3" in proxy.live.read_text()
    serve_then_fail(proxy, backends)
    wait_for(lambda: lines_with(syslog.read(), "/failed"), 10, what="the failed request's log line")
    line = lines_with(syslog.lines, "/failed")[0]
    assert line.startswith("<158>"), line  # local3 (19) * 8 + info (6)
    assert " 503 " in line and "app_shop" in line, line
    assert lines_with(syslog.lines, "/served") == [] and lines_with(syslog.lines, "/probe") == []


def test_all_mode_logs_every_request(router, backends, syslog):
    proxy = router(haproxy_log_target=f"127.0.0.1:{syslog.port}", haproxy_log_requests="all")
    serve_then_fail(proxy, backends)
    wait_for(lambda: lines_with(syslog.read(), "/failed"), 10, what="the failed request's log line")
    [served] = lines_with(syslog.lines, "/served")
    assert " 200 " in served, served


def test_journald_mode_writes_the_log_to_haproxys_standard_output(router, backends):
    proxy = router(haproxy_log_target="journald")
    assert "log stdout format short local0" in proxy.live.read_text()
    serve_then_fail(proxy, backends)
    wait_for(lambda: lines_with(proxy.haproxy_log.read_text().splitlines(), "/failed"), 10, what="the log line")
    [line] = lines_with(proxy.haproxy_log.read_text().splitlines(), "/failed")
    assert line.startswith("<6>"), line  # info: the short format's prefix, which journald reads as the priority
    assert lines_with(proxy.haproxy_log.read_text().splitlines(), "/served") == []


def test_off_logs_nothing(router, backends):
    proxy = router(haproxy_log_target="off", haproxy_log_requests="all")
    assert "\n    log " not in proxy.live.read_text().split("defaults")[0]
    serve_then_fail(proxy, backends)
    time.sleep(1)
    assert lines_with(proxy.haproxy_log.read_text().splitlines(), "/served") == []
