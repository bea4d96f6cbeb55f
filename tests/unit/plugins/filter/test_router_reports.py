"""The filter router_reports: what status.yml shows of each router comes from the renderer's own report parser, and
a garbled value is listed as unreadable instead of failing the play."""

import base64
import json
import time

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.dockyard.platform.plugins.filter.router_reports import router_reports
from ansible_collections.dockyard.platform.plugins.module_utils.router.report import Report
from hypothesis import given
from hypothesis import strategies as st


def entry(key, value: bytes):
    return {"Key": key, "Value": base64.b64encode(value).decode("ascii")}


def report(node="agent1", reloads=4, error=""):
    return Report(node=node, updated=time.time(), heartbeat_ms=5000, reloads=reloads, worker=7, error=error)


def test_a_valid_report_gives_its_reload_count_and_time():
    written = report(error="haproxy: socket timeout")
    (found,) = router_reports([entry("dockyard/routers/agent1", written.value())])
    assert found == {
        "node": "agent1",
        "reloads": 4,
        "updated": round(written.updated, 3),
        "error": "haproxy: socket timeout",
        "unreadable": None,
    }


def test_a_garbled_report_is_listed_as_unreadable_and_the_others_still_are():
    found = router_reports(
        [
            entry("dockyard/routers/agent1", b"{not json"),
            entry("dockyard/routers/agent2", report(node="agent2").value()),
            entry("dockyard/routers/agent3", report(node="someone-else").value()),
            {"Key": "dockyard/routers/agent4", "Value": "%%% not base64"},
            {"Key": "dockyard/routers/agent5", "Value": None},
        ]
    )
    by_node = {item["node"]: item for item in found}
    assert by_node["agent2"]["unreadable"] is None and by_node["agent2"]["reloads"] == 4
    for node in ("agent1", "agent3", "agent4", "agent5"):
        assert by_node[node]["unreadable"], node
        assert by_node[node]["reloads"] is None and by_node[node]["updated"] is None
    assert "is not the key's node" in by_node["agent3"]["unreadable"]


def test_keys_outside_the_routers_folder_are_left_out():
    value = report().value()
    assert router_reports([entry("dockyard/routers/", value), entry("dockyard/routers/a/b", value)]) == []
    assert router_reports([entry("other/routers/agent1", value)]) == []
    (found,) = router_reports([entry("site/routers/agent1", value)], "site/")
    assert found["unreadable"] is None


def test_a_listing_that_is_not_a_list_fails_naming_the_filter():
    with pytest.raises(AnsibleFilterError, match="router_reports: expected Consul's list"):
        router_reports({"Key": "dockyard/routers/agent1"})


@given(value=st.binary(max_size=300), node=st.text(max_size=20))
def test_any_value_is_either_a_report_or_unreadable(value, node):
    (found,) = router_reports([entry("dockyard/routers/x", value)]) or [None]
    assert found is not None
    assert (found["unreadable"] is None) == (found["updated"] is not None)
    json.dumps(found)
    router_reports([entry("dockyard/routers/" + node, value)])
