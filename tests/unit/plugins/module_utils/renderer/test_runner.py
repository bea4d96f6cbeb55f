import io

from ansible_collections.dockyard.platform.plugins.module_utils.renderer import config as configuration
from ansible_collections.dockyard.platform.plugins.module_utils.renderer import status
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.dependencies import PrefixDependency
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.runner import Runner


def make_runner(tmp_path, **template):
    raw = {
        "templates": [
            {"name": "t", "destination": str(tmp_path / "out"), "contents": "{{ ls('p') | length }}", **template}
        ]
    }
    return Runner(configuration.parse(raw, {}), client=object(), stdout=io.StringIO())


def feed(runner, count):
    runner.brain.remember(PrefixDependency("p/"), tuple((f"p/{n}", "v") for n in range(count)))


def test_max_drop_refuses_a_large_drop_and_accepts_a_small_one(tmp_path):
    runner = make_runner(tmp_path, max_drop="50%")
    state = runner.states[0]
    feed(runner, 10)
    assert runner.process(state) == "rendered"
    feed(runner, 5)
    assert runner.process(state) == "refused"
    assert state.refusals == 1
    assert (tmp_path / "out").read_text() == "10"
    feed(runner, 6)
    assert runner.process(state) == "rendered"
    runner.accept_drop("t")
    feed(runner, 0)
    assert runner.process(state) == "rendered"
    assert (tmp_path / "out").read_text() == "0"


def test_quiescence_due_time(tmp_path):
    runner = make_runner(tmp_path, wait={"min": 2, "max": 5})
    state = runner.states[0]
    state.settled = True
    state.first_change, state.last_change = 100.0, 104.0
    assert runner._due(state, 104.0) == 105.0  # capped by first change + max
    state.last_change = 101.0
    assert runner._due(state, 101.0) == 103.0  # last change + min


def test_health_and_metrics(tmp_path):
    runner = make_runner(tmp_path)
    feed(runner, 3)
    runner.process(runner.states[0])
    snapshot = runner.snapshot()
    assert status.health(snapshot) == (200, "ok")
    text = status.metrics(snapshot)
    assert 'dockyard_renderer_renders_total{template="t"} 1' in text
    assert "dockyard_renderer_up 1" in text
    runner.states[0].last_error = "boom"
    assert status.health(runner.snapshot())[0] == 503


ROUTED = (
    "{% set table = routing_table(tree('d/routes/'), tree('d/instances/')) %}"
    "{% for b in table.apps %}{{ b.name }} {{ b.route.hosts | join(' ') }}\n{% endfor %}"
)


def feed_routes(runner, routes):
    runner.brain.remember(PrefixDependency("d/routes/"), tuple((f"d/routes/{k}", v, 1) for k, v in routes.items()))
    runner.brain.remember(PrefixDependency("d/instances/"), ())


def test_entries_a_check_fails_with_are_left_out_and_the_rest_renders(tmp_path, caplog):
    # The operator's check refuses any candidate naming a forbidden host: a real command, run on each candidate.
    runner = make_runner(tmp_path, contents=ROUTED, check="! grep -q forbidden %s")
    state = runner.states[0]
    routes = {name: f'{{"hosts": ["{name}.test"]}}' for name in ("a", "b", "c", "d", "e")}
    routes["c"] = '{"hosts": ["forbidden.test"]}'
    routes["e"] = '{"hosts": ["e.forbidden.test"]}'
    feed_routes(runner, routes)
    with caplog.at_level("ERROR", logger="dockyard"):
        assert runner.process(state) == "rendered"
    assert (tmp_path / "out").read_text() == "app_a a.test\napp_b b.test\napp_d d.test\n"
    left_out = [r.fields["key"] for r in caplog.records if r.getMessage().startswith("entry left out")]
    assert left_out == ["d/routes/c", "d/routes/e"]
    assert sorted(state.quarantine) == ["d/routes/c", "d/routes/e"]
    assert state.last_error is None and state.check_failures == 0
    assert "d/routes/c: skipped, the configuration check fails with it" in runner.snapshot()["templates"][0]["skipped"]

    # A quarantined entry is weighed again once its value changes.
    routes["c"] = '{"hosts": ["c.test"]}'
    feed_routes(runner, routes)
    assert runner.process(state) == "rendered"
    assert (tmp_path / "out").read_text() == "app_a a.test\napp_b b.test\napp_c c.test\napp_d d.test\n"
    assert sorted(state.quarantine) == ["d/routes/e"]


def test_a_check_that_fails_without_any_entry_keeps_the_live_file(tmp_path):
    runner = make_runner(tmp_path, contents=ROUTED, check="false")
    state = runner.states[0]
    feed_routes(runner, {"a": '{"hosts": ["a.test"]}'})
    assert runner.process(state) == "failed"
    assert state.check_failures == 1 and state.quarantine == {}
    assert not (tmp_path / "out").exists()


def test_once_fetches_until_complete_and_names_missing_keys_from_data(tmp_path, fake_consul):
    fake_consul.set("cfg/name", "shop")
    template = "{{ key('cfg/name') }}{% for item in ls('cfg/extra') %}{{ key(item.value) }}{% endfor %}"
    raw = {
        "consul": {"address": fake_consul.address},
        "templates": [{"name": "t", "destination": str(tmp_path / "out"), "contents": template}],
    }
    runner = Runner(configuration.parse(raw, {}), stdout=io.StringIO())
    assert runner.once() == {"t": "rendered"}
    assert (tmp_path / "out").read_text() == "shop"
    fake_consul.set("cfg/extra/a", "cfg/gone")
    fake_consul.set("cfg/extra/b", "cfg/also gone")
    runner = Runner(configuration.parse(raw, {}), stdout=io.StringIO())
    assert runner.once() == {"t": "failed"}
    state = runner.states[0]
    assert state.missing == ["cfg/gone", "cfg/also gone"]
    assert state.last_error == "missing key(s): cfg/gone, cfg/also gone"
    assert (tmp_path / "out").read_text() == "shop"
