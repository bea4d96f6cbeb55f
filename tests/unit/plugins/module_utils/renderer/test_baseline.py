import json
import os
import re

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.renderer import baseline, config
from hypothesis import given
from hypothesis import strategies as st

LS = ("ls", "p/")
HOUR = 3600.0


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_each_render_is_weighed_against_the_most_entries_live_in_the_window_not_the_last_render():
    clock = Clock()
    guard = baseline.Baseline("t", "/etc/t.cfg", clock=clock)
    guard.record({LS: 10}, HOUR)
    for count in (9, 8, 7, 6):  # one delete at a time: each within 50% of the render before it
        clock.now += 1
        assert guard.fall({LS: count}, 0.5, HOUR) is None
        guard.record({LS: count}, HOUR)
    clock.now += 1
    assert guard.fall({LS: 5}, 0.5, HOUR) == (LS, 10, 5)  # but not of the 10 live five seconds ago


def test_the_window_forgets_what_was_live_before_it():
    clock = Clock()
    guard = baseline.Baseline("t", "/etc/t.cfg", clock=clock)
    guard.record({LS: 10}, HOUR)
    clock.now += 60
    guard.record({LS: 6}, HOUR)  # 10 stopped being live now
    clock.now += HOUR - 1
    assert guard.fall({LS: 4}, 0.5, HOUR) == (LS, 10, 4)
    clock.now += 2
    assert guard.fall({LS: 4}, 0.5, HOUR) is None  # 6 is the most live in the last hour


def test_a_render_live_for_longer_than_the_window_still_counts():
    clock = Clock()
    guard = baseline.Baseline("t", "/etc/t.cfg", clock=clock)
    guard.record({LS: 10}, HOUR)
    clock.now += 10 * HOUR  # nothing changed: 10 entries stayed live all along
    assert guard.fall({LS: 2}, 0.5, HOUR) == (LS, 10, 2)


def test_growth_raises_the_baseline_at_once():
    clock = Clock()
    guard = baseline.Baseline("t", "/etc/t.cfg", clock=clock)
    guard.record({LS: 4}, HOUR)
    clock.now += 1
    guard.record({LS: 40}, HOUR)
    clock.now += 1
    assert guard.fall({LS: 19}, 0.5, HOUR) == (LS, 40, 19)


def test_an_accepted_drop_resets_the_baseline_to_the_accepted_counts():
    clock = Clock()
    guard = baseline.Baseline("t", "/etc/t.cfg", clock=clock)
    guard.record({LS: 10}, HOUR)
    guard.reset({LS: 1})
    assert guard.fall({LS: 1}, 0.5, HOUR) is None
    assert guard.fall({LS: 0}, 0.5, HOUR) == (LS, 1, 0)


def test_the_baseline_survives_a_restart_through_its_state_file(tmp_path):
    clock = Clock()
    path = baseline.state_path(str(tmp_path), "hap/proxy")
    assert os.path.dirname(path) == str(tmp_path)  # a slash in the name does not make a directory
    before = baseline.Baseline("hap/proxy", "/etc/t.cfg", path, clock)
    before.record({LS: 10, ("tree", "q/"): 3}, HOUR)
    clock.now += 5
    before.record({LS: 7, ("tree", "q/"): 3}, HOUR)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(path)]  # no temporary file left

    after = baseline.Baseline("hap/proxy", "/etc/t.cfg", path, clock)
    assert after.problem is None
    assert after.fall({LS: 5, ("tree", "q/"): 3}, 0.5, HOUR) == (LS, 10, 5)
    assert after.dump() == before.dump()


@pytest.mark.parametrize(
    ("contents", "problem"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b'{"something": "else"}', "not a max_drop baseline"),
        (b"[]", "not a max_drop baseline"),
        (
            json.dumps(
                {"format": baseline.STATE_FORMAT, "template": "other", "destination": "/etc/t.cfg", "prefixes": []}
            ).encode(),
            "written for template 'other'",
        ),
        (
            json.dumps(
                {
                    "format": baseline.STATE_FORMAT,
                    "template": "t",
                    "destination": "/etc/t.cfg",
                    "prefixes": [{"function": "ls", "prefix": "p/", "live": -1, "past": []}],
                }
            ).encode(),
            r"prefixes\[0\].live: expected a count",
        ),
        (
            json.dumps(
                {
                    "format": baseline.STATE_FORMAT,
                    "template": "t",
                    "destination": "/etc/t.cfg",
                    "prefixes": [{"function": "ls", "prefix": "p/", "live": 3, "past": [["soon", 4]]}],
                }
            ).encode(),
            r"past\[0\]\[0\]: expected a time",
        ),
    ],
)
def test_a_corrupt_or_foreign_state_file_is_reported_and_ignored(tmp_path, contents, problem):
    path = baseline.state_path(str(tmp_path), "t")
    with open(path, "wb") as handle:
        handle.write(contents)
    guard = baseline.Baseline("t", "/etc/t.cfg", path, Clock())
    assert guard.problem is not None
    assert path in guard.problem
    assert re.search(problem, guard.problem)
    assert guard.fall({LS: 0}, 0.5, HOUR) is None  # no baseline: nothing to refuse against
    guard.record({LS: 2}, HOUR)  # and the next good render replaces the file
    assert baseline.Baseline("t", "/etc/t.cfg", path, Clock()).problem is None


def test_an_unusable_state_directory_raises_for_the_caller_to_report(tmp_path):
    (tmp_path / "file").write_text("")
    guard = baseline.Baseline("t", "/etc/t.cfg", str(tmp_path / "file" / "t.max-drop.json"), Clock())
    with pytest.raises(OSError):
        guard.record({LS: 2}, HOUR)


# Model: the most entries live at any moment of [now - window, now], from the whole history of records.
histories = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 600)), min_size=1, max_size=30)


@given(histories, st.integers(1, 2 * 3600), st.integers(0, 3600))
def test_the_baseline_is_the_most_entries_live_within_the_window(history, window, wait):
    clock = Clock(0.0)
    guard = baseline.Baseline("t", "/etc/t.cfg", clock=clock)
    changes = []  # (time, count) of each render that changed the live count
    for count, step in history:
        clock.now += step
        guard.record({LS: count}, window)
        if not changes or changes[-1][1] != count:
            changes.append((clock.now, count))
    clock.now += wait
    since = clock.now - window
    live_in_window = [
        count
        for index, (_start, count) in enumerate(changes)
        if index == len(changes) - 1 or changes[index + 1][0] >= since
    ]
    assert guard.peaks[LS].largest(since) == max(live_in_window)
    reloaded = baseline.parse_state(guard.dump().encode(), "t", "/etc/t.cfg")
    assert reloaded[LS].largest(since) == max(live_in_window)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@given(
    st.fixed_dictionaries(
        {"format": st.just(baseline.STATE_FORMAT), "template": st.just("t"), "destination": st.just("/d")},
        optional={"prefixes": json_values},
    )
    | json_values
)
def test_the_state_parser_takes_anything_and_raises_only_state_error(document):
    try:
        peaks = baseline.parse_state(json.dumps(document).encode(), "t", "/d")
    except baseline.StateError:
        return
    assert all(isinstance(entry, baseline.Peaks) for entry in peaks.values())


def test_settings_state_dir_and_window():
    parsed = config.parse(
        {
            "state_dir": "/var/lib/dockyard/renderer/",
            "templates": [{"contents": "", "destination": "/x", "max_drop": "50%", "max_drop_window": "10m"}],
        },
        {},
    )
    assert parsed.state_dir == "/var/lib/dockyard/renderer"
    assert parsed.templates[0].max_drop_window == 600
    assert config.parse({"templates": [{"contents": "", "destination": "/x"}]}, {}).templates[0].max_drop_window == HOUR
    with pytest.raises(config.ConfigError, match="state_dir: expected one clean absolute path"):
        config.parse({"state_dir": "var/lib"}, {})
    with pytest.raises(config.ConfigError, match="state_dir: expected one clean absolute path"):
        config.parse({"state_dir": "/var/../etc"}, {})
    with pytest.raises(config.ConfigError, match=r"templates\[0\].max_drop_window must be above 0"):
        config.parse({"templates": [{"contents": "", "destination": "/x", "max_drop_window": 0}]}, {})
