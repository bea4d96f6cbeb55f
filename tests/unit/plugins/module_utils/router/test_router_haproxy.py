"""Must show: `show servers state` and `show proc` as HAProxy 2.6 prints them parse into typed values; the
numeric states map to UP/DOWN/MAINT/DRAIN as HAProxy's management guide defines them; any other text, however
hostile, raises a ParseError naming the line and never anything else."""

import itertools
import socketserver
import threading

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.router import haproxy
from hypothesis import given, settings
from hypothesis import strategies as st

HEADER = (
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight"
    " srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state"
    " srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port"
    " srv_check_addr srv_agent_addr srv_agent_port"
)
# Printed by HAProxy 2.6.12 (.cache/bin/haproxy): a DOWN server, a drained one, a `disabled` one on IPv6.
STATE = "\n".join(
    [
        "1",
        HEADER,
        "2 app_web 1 node1-t1 127.0.0.1 2 0 1 1 1 6 3 4 6 0 0 0 - 8765 - 0 0 - - 0",
        "2 app_web 2 node1-t2 127.0.0.1 0 8 5 5 2 8 2 0 6 0 0 0 - 22 - 0 0 - - 0",
        "2 app_web 3 node2-t3 ::1 0 5 1 1 27 1 0 0 8 0 0 0 - 8080 - 0 0 - - 0",
        "",
        "",
    ]
)
SHOW_PROC = (
    "#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
    "12196           master          2 [failed: 0]   0d00h00m08s     2.6.12-1+deb12u4\n"
    "# workers\n"
    "12408           worker          0               0d00h00m06s     2.6.12-1+deb12u4\n"
    "12300           worker          1               0d00h00m07s     2.6.12-1+deb12u4\n"
    "# programs\n"
    "\n"
)


def line(backend="app_web", name="s1", addr="10.0.0.1", op="2", admin="0", weight="1", port="80"):
    fields = ["2", backend, "1", name, addr, op, admin, weight, "1", "0", "6", "3", "4", "6", "0", "0", "0", "-"]
    return " ".join([*fields, port, "-", "0", "0", "-", "-", "0"])


def state(*lines):
    return "\n".join(["1", HEADER, *lines, "", ""])


def test_the_state_haproxy_prints_parses():
    backends = haproxy.parse_servers_state(STATE)
    assert backends == {
        "app_web": {
            "node1-t1": haproxy.Server("127.0.0.1", 8765, "UP", 1),
            "node1-t2": haproxy.Server("127.0.0.1", 22, "DOWN", 5),
            "node2-t3": haproxy.Server("::1", 8080, "MAINT", 1),
        }
    }


def test_no_servers_parse_to_no_backends():
    assert haproxy.parse_servers_state(state()) == {}


@pytest.mark.parametrize(
    ("op", "admin", "expected"),
    [
        (2, 0, "UP"),  # running
        (1, 0, "UP"),  # starting: slowstart already sends it traffic
        (0, 0, "DOWN"),
        (3, 0, "DRAIN"),  # stopping: a 404 under disable-on-404
        (2, 0x08, "DRAIN"),  # forced drain (`set server ... state drain`)
        (2, 0x10, "DRAIN"),  # inherited drain
        (0, 0x08, "DOWN"),  # drained and down: down
        (2, 0x01, "MAINT"),  # forced maintenance
        (2, 0x02, "MAINT"),  # inherited maintenance
        (0, 0x05, "MAINT"),  # `disabled` in the configuration: CMAINT with FMAINT
        (2, 0x20, "MAINT"),  # address resolution failed
        (2, 0x40, "UP"),  # HMAINT only marks an FQDN set from the CLI
        (2, 0x09, "MAINT"),  # maintenance wins over drain
    ],
)
def test_states_map_as_haproxy_defines_them(op, admin, expected):
    assert haproxy.server_state(op, admin) == expected


@pytest.mark.parametrize(
    ("text", "number", "reason"),
    [
        ("", 1, "format version 1"),
        ("Can't find backend.\n\n", 1, "format version 1"),
        ("1\n", 2, "header"),
        ("1\n# be_name srv_name\n", 2, "missing column(s) srv_addr"),
        ("1\n# be_name be_name\n", 2, "distinct column names"),
        (state(line(op="4")), 3, "srv_op_state: expected a number 0-3"),
        (state(line(admin="128")), 3, "srv_admin_state"),
        (state(line(weight="257")), 3, "srv_uweight"),
        (state(line(port="65536")), 3, "srv_port"),
        (state(line(addr="example.com")), 3, "srv_addr: expected an IP address"),
        (state(line(addr="10.0.0.256")), 3, "srv_addr"),
        (state(line(name="a/b")), 3, "srv_name"),
        (state(line(backend="x" * 101)), 3, "be_name"),
        (state(line(), line()), 4, "listed twice"),
        (state(line() + " extra"), 3, "expected 25 fields"),
        (state(line(), "", line(name="s2")), 4, "expected 25 fields"),
        (state(line(name="s\x1b[31m")), 3, "control character"),
        (state(line() + "\r"), 3, "control character"),
    ],
)
def test_bad_answers_raise_a_parse_error_naming_the_line(text, number, reason):
    with pytest.raises(haproxy.ParseError) as raised:
        haproxy.parse_servers_state(text)
    assert raised.value.number == number
    assert reason in str(raised.value)
    assert str(raised.value).startswith(f"line {number}: ")


def test_a_parse_error_shows_the_offending_line_cut_short():
    with pytest.raises(haproxy.ParseError) as raised:
        haproxy.parse_servers_state(state(line(addr="nope" + "x" * 500)))
    message = str(raised.value)
    assert "'2 app_web 1 s1 nope" in message and message.endswith("...") and len(message) < 400


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_parses_or_raises_a_parse_error(text):
    for parse in (haproxy.parse_servers_state, haproxy.parse_show_proc):
        try:
            parse(text)
        except haproxy.ParseError as error:
            assert str(error).startswith(f"line {error.number}: ")


FIELD = st.sampled_from(["0", "1", "2", "3", "8", "65535", "-", "", "10.0.0.1", "::1", "app_web", "s 1", "x\t"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(FIELD, min_size=20, max_size=27).map(" ".join), max_size=5))
def test_lines_near_the_format_parse_or_raise_a_parse_error(lines):
    try:
        backends = haproxy.parse_servers_state(state(*lines))
    except haproxy.ParseError:
        return
    for servers in backends.values():
        for server in servers.values():
            assert server.state in ("UP", "DOWN", "MAINT", "DRAIN") and 0 <= server.port <= 65535


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.from_regex(haproxy.NAME, fullmatch=True),
            st.ip_addresses().map(str),
            st.integers(0, 3),
            st.integers(0, 0x7F),
            st.integers(0, 256),
            st.integers(0, 65535),
        ),
        max_size=8,
        unique_by=lambda item: item[0],
    )
)
def test_every_well_formed_line_parses_to_its_values(servers):
    text = state(
        *(line("app_x", name, addr, str(op), str(admin), str(w), str(p)) for name, addr, op, admin, w, p in servers)
    )
    parsed = haproxy.parse_servers_state(text).get("app_x", {})
    assert {name: (s.addr, s.port, s.weight) for name, s in parsed.items()} == {
        name: (addr, port, weight) for name, addr, _op, _admin, weight, port in servers
    }


def test_show_proc_gives_the_reload_counter_and_the_current_worker():
    processes = haproxy.parse_show_proc(SHOW_PROC)
    assert (processes.master_pid, processes.reloads) == (12196, 2)
    assert processes.workers == ((12408, 0), (12300, 1))
    assert processes.current_worker() == 12408


def test_show_proc_without_a_current_worker_is_a_haproxy_error():
    during_reload = SHOW_PROC.replace("12408           worker          0", "12408           worker          1")
    with pytest.raises(haproxy.HaproxyError, match="0 current workers"):
        haproxy.parse_show_proc(during_reload).current_worker()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no master line"),
        ("Unknown command.\n", "expected a master line"),
        (SHOW_PROC.replace("# workers\n", ""), "expected a master line"),
        (SHOW_PROC.replace("12300           worker", "12300           wörker"), "expected a worker line"),
    ],
)
def test_bad_show_proc_raises_a_parse_error(text, reason):
    with pytest.raises(haproxy.ParseError, match=reason):
        haproxy.parse_show_proc(text)


class Master:
    """Stands in for HAProxy's master CLI on a Unix socket (a real HAProxy cannot be made to reload between two
    given reads): answers each command from answer(command), which the test sets."""

    def __init__(self, path):
        self.path = str(path)
        self.commands = []
        self.answer = lambda command: ""
        master = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                command = self.rfile.readline().decode().strip()
                master.commands.append(command)
                self.wfile.write(master.answer(command).encode())

        self.server = socketserver.ThreadingUnixStreamServer(self.path, Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def master(tmp_path):
    made = Master(tmp_path / "master.sock")
    yield made
    made.close()


def proc(reloads, worker):
    return SHOW_PROC.replace("2 [failed: 0]", f"{reloads} [failed: 0]").replace("12408", str(worker))


def test_a_snapshot_is_the_current_workers_state_with_its_generation(master):
    master.answer = lambda command: STATE if command == "@!12408 show servers state" else proc(2, 12408)
    snapshot = haproxy.MasterCLI(master.path).snapshot()
    assert (snapshot.reloads, snapshot.worker) == (2, 12408)
    assert snapshot.backends["app_web"]["node1-t1"].state == "UP"
    assert master.commands == ["show proc", "@!12408 show servers state", "show proc"]


def test_a_reload_between_the_reads_asks_again(master):
    procs = iter([proc(2, 12408), proc(3, 12500), proc(3, 12500), proc(3, 12500)])
    master.answer = lambda command: (
        "Can't find the target PID\n"
        if command.startswith("@!12408")
        else (STATE if command.startswith("@!") else next(procs))
    )
    snapshot = haproxy.MasterCLI(master.path).snapshot()
    assert (snapshot.reloads, snapshot.worker) == (3, 12500)
    assert master.commands[-2] == "@!12500 show servers state"


def test_reloads_during_every_read_are_a_haproxy_error(master):
    counter = itertools.count()
    master.answer = lambda command: STATE if command.startswith("@!") else proc(next(counter), 12408)
    with pytest.raises(haproxy.HaproxyError, match="reloaded during each of 3 reads"):
        haproxy.MasterCLI(master.path).snapshot()


def test_an_absent_socket_is_a_haproxy_error_naming_it(tmp_path):
    with pytest.raises(haproxy.HaproxyError, match=f"master CLI {tmp_path}/none.sock: No such file"):
        haproxy.MasterCLI(str(tmp_path / "none.sock")).snapshot()
