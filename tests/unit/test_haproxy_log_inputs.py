"""The router's log settings reach haproxy.cfg's global section: the preflight refuses anything but the grammar
haproxy_log_target, haproxy_log_requests and haproxy_log_facility document, before a host is touched."""

import pytest
from test_role_preflight_inputs import run_preflight


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"haproxy_log_target": "syslog.example:514\n    log 10.0.0.9:514 local0"}, "haproxy_log_target"),
        ({"haproxy_log_target": "syslog.example"}, "haproxy_log_target"),
        ({"haproxy_log_target": "syslog.example:0"}, "haproxy_log_target"),
        ({"haproxy_log_target": "syslog.example:65536"}, "haproxy_log_target"),
        ({"haproxy_log_target": "/dev/log"}, "haproxy_log_target"),
        ({"haproxy_log_requests": "none"}, "haproxy_log_requests"),
        ({"haproxy_log_facility": "kern"}, "haproxy_log_facility"),
    ],
)
def test_a_log_setting_outside_its_grammar_is_refused_naming_it(tmp_path, variables, named):
    result = run_preflight(tmp_path, "haproxy", variables)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"{named} must be" in output or f"{named} errors or all" in output or f"{named} local0" in output, output
    assert "changed=0" in output


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"haproxy_log_target": "off"},
        {
            "haproxy_log_target": "logs.example.org:1514",
            "haproxy_log_requests": "all",
            "haproxy_log_facility": "local3",
        },
    ],
)
def test_the_documented_log_settings_pass(tmp_path, variables):
    result = run_preflight(tmp_path, "haproxy", variables)
    assert result.returncode == 0, result.stdout + result.stderr
