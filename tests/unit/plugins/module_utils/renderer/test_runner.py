import io

from ansible_collections.dockyard.platform.plugins.module_utils.renderer import config as configuration
from ansible_collections.dockyard.platform.plugins.module_utils.renderer import status
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.dependencies import (
    KeyDependency,
    PrefixDependency,
)
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.runner import Runner


def make_runner(tmp_path, state_dir=None, **template):
    raw = {
        "state_dir": state_dir,
        "templates": [
            {"name": "t", "destination": str(tmp_path / "out"), "contents": "{{ ls('p') | length }}", **template}
        ],
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


def test_max_drop_weighs_one_delete_at_a_time_against_the_most_entries_live(tmp_path):
    runner = make_runner(tmp_path, max_drop="50%")
    state = runner.states[0]
    feed(runner, 10)
    assert runner.process(state) == "rendered"
    for count in (9, 8, 7, 6):
        feed(runner, count)
        assert runner.process(state) == "rendered"
    feed(runner, 5)
    assert runner.process(state) == "refused"
    assert "ls(p/) fell from 10 to 5 entries" in state.last_error
    assert (tmp_path / "out").read_text() == "6"


def test_a_restarted_runner_weighs_its_first_render_against_the_saved_baseline(tmp_path, caplog):
    settings = {"max_drop": "50%", "state_dir": str(tmp_path / "state")}
    first = make_runner(tmp_path, **settings)
    feed(first, 10)
    assert first.process(first.states[0]) == "rendered"
    feed(first, 6)
    assert first.process(first.states[0]) == "rendered"

    restarted = make_runner(tmp_path, **settings)
    feed(restarted, 5)
    assert restarted.process(restarted.states[0]) == "refused"
    assert (tmp_path / "out").read_text() == "6"

    # The operator's override: the accepted count becomes the baseline, for this run and the next.
    restarted.accept_drop("t")
    feed(restarted, 1)
    assert restarted.process(restarted.states[0]) == "rendered"
    again = make_runner(tmp_path, **settings)
    feed(again, 1)
    assert again.process(again.states[0]) == "unchanged"
    feed(again, 0)
    assert again.process(again.states[0]) == "refused"

    # A state file that is not ours is reported and ignored; the daemon goes on without a baseline.
    (tmp_path / "state" / "t.max-drop.json").write_text("{garbage")
    caplog.clear()
    with caplog.at_level("ERROR", logger="dockyard"):
        fresh = make_runner(tmp_path, **settings)
        feed(fresh, 0)
        assert fresh.process(fresh.states[0]) == "rendered"
    assert [r.getMessage() for r in caplog.records] == ["max_drop state file ignored, starting without a baseline"]
    assert "not JSON" in caplog.records[0].fields["error"]


def test_a_mode_change_alone_is_applied_and_reported_without_running_the_command(tmp_path, caplog):
    runs = tmp_path / "runs"
    template = {"mode": "0644", "command": f"echo run >> {runs}"}
    runner = make_runner(tmp_path, **template)
    feed(runner, 3)
    assert runner.process(runner.states[0]) == "rendered"
    runner = make_runner(tmp_path, **{**template, "mode": "0600"})
    feed(runner, 3)
    with caplog.at_level("INFO", logger="dockyard"):
        assert runner.process(runner.states[0]) == "attributes"
    assert oct((tmp_path / "out").stat().st_mode & 0o777) == "0o600"
    assert "owner, group or mode set, contents unchanged" in [r.getMessage() for r in caplog.records]
    assert runs.read_text() == "run\n"  # the first render's command only
    assert runner.states[0].last_error is None and runner.states[0].settled


def test_missing_consul_key_waits_or_fails_and_error_on_missing_key_is_about_map_keys(tmp_path):
    template = "{{ key('absent') }}"
    waiting = make_runner(tmp_path, contents=template)
    waiting.brain.remember(KeyDependency("absent"), None)
    assert waiting.process(waiting.states[0]) == "missing"
    assert waiting.states[0].last_error is None
    failing = make_runner(tmp_path, contents=template, missing_consul_key="fail")
    failing.brain.remember(KeyDependency("absent"), None)
    assert failing.process(failing.states[0]) == "missing"
    assert failing.states[0].last_error == "missing key(s): absent"

    # consul-template's error_on_missing_key: indexing a map with a key it lacks (true by default here).
    indexing = "{% set route = '{\"port\": 80}' | parse_json %}port={{ route.port }} host={{ route.host }}\n"
    strict = make_runner(tmp_path, contents=indexing)
    assert strict.process(strict.states[0]) == "failed"
    assert "has no attribute 'host'" in strict.states[0].last_error
    lenient = make_runner(tmp_path, contents=indexing, error_on_missing_key=False)
    assert lenient.process(lenient.states[0]) == "rendered"
    assert (tmp_path / "out").read_text() == "port=80 host=\n"
    undefined_name = make_runner(tmp_path, contents="{{ nope }}", error_on_missing_key=False)
    assert undefined_name.process(undefined_name.states[0]) == "failed"  # an undefined name is never a map key
