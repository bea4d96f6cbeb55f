"""Templates report data they skip (warn(), routing_table()); the runner logs each at error level."""

import io
import json
import logging

from ansible_collections.dockyard.platform.plugins.module_utils.renderer import config as configuration
from ansible_collections.dockyard.platform.plugins.module_utils.renderer import status
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.brain import Brain
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.dependencies import PrefixDependency
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.runner import Runner
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.template import Template

TEMPLATE = (
    "{% set table = routing_table(tree('d/routes/'), tree('d/instances/'), reserved_ports=[80]) %}"
    "{% for b in table.apps %}{{ b.name }}:{% for s in b.servers %}{{ s.name }}={{ s.weight }} {% endfor %}\n"
    "{% endfor %}"
)


def brain_with(routes, instances):
    brain = Brain()
    brain.remember(PrefixDependency("d/routes/"), tuple((f"d/routes/{k}", v) for k, v in routes.items()))
    brain.remember(PrefixDependency("d/instances/"), tuple((f"d/instances/{k}", v) for k, v in instances.items()))
    return brain


def test_warn_records_without_output_and_once_per_message():
    execution = Template("t", "a{{ warn('bad key x') }}{{ warn('bad key x') }}b").execute(Brain())
    assert execution.output == "ab"
    assert execution.warnings == ["bad key x"]
    assert execution.complete


def test_routing_table_renders_the_good_and_records_the_bad():
    brain = brain_with(
        {"web": '{"hosts": ["web.test"]}', "bad": "{", "port": '{"service_port": 80}'},
        {"n1/web/t1": json.dumps({"addr": "10.0.0.1", "port": 8080}), "n2/web/t2": "nope"},
    )
    execution = Template("haproxy", TEMPLATE).execute(brain)
    assert execution.output == "app_web:n1-t1=100 \n"
    assert len(execution.warnings) == 3
    assert any(message.startswith("route bad: invalid JSON") for message in execution.warnings)
    assert "route port: service_port: 80 is one of the router's own ports" in execution.warnings


def test_the_runner_logs_skipped_data_once_at_error_level(tmp_path, caplog):
    raw = {"templates": [{"name": "haproxy", "destination": str(tmp_path / "out"), "contents": TEMPLATE}]}
    runner = Runner(configuration.parse(raw, {}), client=object(), stdout=io.StringIO())
    state = runner.states[0]
    good = {"n1/web/t1": json.dumps({"addr": "10.0.0.1", "port": 8080})}
    for dependency, data in brain_with({"web": '{"hosts": ["web.test"]}', "bad": "{"}, good)._data.items():
        runner.brain.remember(dependency, data)
    with caplog.at_level(logging.ERROR, logger="dockyard"):
        assert runner.process(state) == "rendered"
        assert runner.process(state) == "unchanged"
    records = [record for record in caplog.records if record.getMessage() == "template skipped data"]
    assert len(records) == 1, "logged once while it stays"
    assert records[0].levelno == logging.ERROR
    assert records[0].fields["template"] == "haproxy"
    assert records[0].fields["error"].startswith("route bad: invalid JSON")
    assert (tmp_path / "out").read_text() == "app_web:n1-t1=100 \n"
    snapshot = runner.snapshot()
    assert snapshot["templates"][0]["skipped"] == [records[0].fields["error"]]
    assert status.health(snapshot)[0] == 200, "skipped data is not a template error"
    assert 'dockyard_renderer_skipped_data{template="haproxy"} 1' in status.metrics(snapshot)
