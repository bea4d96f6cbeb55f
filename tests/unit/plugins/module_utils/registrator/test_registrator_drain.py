"""Drain on stop, the pure parts: the labels' grammar (Hypothesis), the due-list against a clock the test sets, and
the file that carries drains across a restart."""

import json
import math
import re

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.registrator import drain
from hypothesis import given
from hypothesis import strategies as st

CONTAINER = "c0ffee" * 10 + "abcd"


@given(st.integers(min_value=0, max_value=3600), st.sampled_from(["", "s"]))
def test_whole_seconds_up_to_an_hour_are_drain_windows(seconds, unit):
    assert drain.parse_drain_timeout(f"{seconds}{unit}") == seconds


@given(st.integers(min_value=0, max_value=60), st.sampled_from([("ms", 0.001), ("s", 1), ("m", 60)]))
def test_every_unit_of_the_duration_grammar_is_read(amount, unit):
    suffix, scale = unit
    assert drain.parse_drain_timeout(f"{amount}{suffix}") == pytest.approx(amount * scale)


@given(st.integers(min_value=3601, max_value=10**9))
def test_a_window_over_an_hour_is_refused_naming_the_label(seconds):
    with pytest.raises(drain.LabelError, match=r"^label org\.dockyard\.drain_timeout: must be at most 3600s"):
        drain.parse_drain_timeout(f"{seconds}s")


@given(st.text(alphabet="0123456789.mshd -\n", max_size=12) | st.text(max_size=12))
def test_any_text_is_a_window_of_at_most_an_hour_or_refused_naming_the_label(text):
    try:
        seconds = drain.parse_drain_timeout(text)
    except drain.LabelError as error:
        assert str(error).startswith("label org.dockyard.drain_timeout: ")
    else:
        assert re.fullmatch(r"[0-9]+(\.[0-9]+)?(ms|s|m|h)?", text)
        assert 0 <= seconds <= 3600


@pytest.mark.parametrize("value", ["2 s", " 2s", "2s\n", "-1s", "1d", "2S", "", "1e3", "nan", "inf", None])
def test_durations_outside_the_grammar(value):
    with pytest.raises(drain.LabelError, match=r"^label org\.dockyard\.drain_timeout: "):
        drain.parse_drain_timeout(value)


@given(st.sampled_from(sorted(drain.STOP_SIGNALS)), st.sampled_from(["full", "short", "number"]))
def test_a_stop_signal_by_name_short_name_or_number_is_canonical(name, form):
    value = {"full": name, "short": name[3:], "number": str(drain.STOP_SIGNALS[name])}[form]
    assert drain.parse_stop_signal(value) == name


@given(st.text(max_size=12))
def test_a_stop_signal_is_one_of_the_known_set_or_refused_naming_the_label(value):
    try:
        parsed = drain.parse_stop_signal(value)
    except drain.LabelError as error:
        assert str(error).startswith("label org.dockyard.stop_signal: ")
    else:
        assert parsed in drain.STOP_SIGNALS
        assert value in (parsed, parsed[3:], str(drain.STOP_SIGNALS[parsed]))


@pytest.mark.parametrize("value", ["SIGURG", "URG", "23"])
def test_the_drain_signal_cannot_be_the_real_stop_signal(value):
    with pytest.raises(drain.LabelError, match="SIGURG starts the drain"):
        drain.parse_stop_signal(value)


@pytest.mark.parametrize("value", ["sigterm", "SIGTERM\n", " 15", "015", "64", "SIGSTOP", "SIGRTMIN+3", "", 15])
def test_stop_signals_outside_the_grammar_or_the_set(value):
    with pytest.raises(drain.LabelError, match=r"^label org\.dockyard\.stop_signal: "):
        drain.parse_stop_signal(value)


def test_settings_a_good_pair_and_the_default_signal():
    labels = {drain.DRAIN_TIMEOUT_LABEL: "30s", drain.STOP_SIGNAL_LABEL: "QUIT"}
    assert drain.settings_of(labels) == (30.0, "SIGQUIT", [])
    assert drain.settings_of({drain.DRAIN_TIMEOUT_LABEL: "5s"}) == (5.0, "SIGTERM", [])


def test_settings_a_bad_label_means_no_window_and_sigterm_for_a_bad_signal():
    window, stop_signal, problems = drain.settings_of({drain.DRAIN_TIMEOUT_LABEL: "soon"})
    assert (window, stop_signal) == (0.0, "SIGTERM")
    assert problems == ["label org.dockyard.drain_timeout: expected a duration such as 2s or 500ms, got 'soon'"]
    # A bad signal with a good window: stopped at once too, as the window was meant for another signal.
    window, stop_signal, problems = drain.settings_of(
        {drain.DRAIN_TIMEOUT_LABEL: "30s", drain.STOP_SIGNAL_LABEL: "SIGSTOP"}
    )
    assert (window, stop_signal) == (0.0, "SIGTERM")
    assert len(problems) == 1 and "org.dockyard.stop_signal" in problems[0]


def entry(container, due, signal="SIGTERM"):
    return drain.Drain(container, f"name-{container}", due, signal)


def test_the_due_list_hands_out_each_drain_once_its_window_has_passed():
    due_list = drain.DueList()
    assert due_list.next_due() == math.inf
    assert due_list.add(entry("b", 110.0))
    assert due_list.add(entry("a", 105.0))
    assert due_list.next_due() == 105.0
    assert due_list.pop_due(104.9) == []
    assert due_list.pop_due(105.0) == [entry("a", 105.0)]
    assert "a" not in due_list and "b" in due_list
    assert due_list.next_due() == 110.0
    assert due_list.pop_due(200.0) == [entry("b", 110.0)]
    assert len(due_list) == 0
    assert due_list.pop_due(300.0) == []


def test_a_second_stop_does_not_move_the_deadline():
    due_list = drain.DueList([entry("a", 105.0)])
    assert not due_list.add(entry("a", 200.0))
    assert due_list.pop_due(105.0) == [entry("a", 105.0)]


def test_cancel_and_keep_only_drop_the_drains_of_containers_that_went():
    due_list = drain.DueList([entry("a", 1.0), entry("b", 2.0), entry("c", 3.0)])
    assert due_list.cancel("b") == entry("b", 2.0)
    assert due_list.cancel("b") is None
    assert due_list.keep_only({"c", "z"}) == [entry("a", 1.0)]
    assert due_list.drains() == [entry("c", 3.0)]


def test_the_store_round_trips_and_starts_empty(tmp_path):
    store = drain.DrainStore(str(tmp_path / "state"))
    assert store.load() == []
    drains = [drain.Drain(CONTAINER, "web.1.kq3v9x1", 1764590000.25, "SIGQUIT")]
    store.save(drains)
    assert store.load() == drains
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    store.save([])
    assert store.load() == []
    assert sorted(path.name for path in (tmp_path / "state").iterdir()) == ["drains.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "cannot read it"),
        ("[]", "expected an object with one list, drains"),
        ('{"drains": [], "more": 1}', "expected an object with one list, drains"),
        ('{"drains": [{"container": "x"}]}', "drains[0]: expected an object with container, name, due and signal"),
        (
            json.dumps({"drains": [{"container": "../etc", "name": "w", "due": 1, "signal": "SIGTERM"}]}),
            "drains[0].container: expected a container ID",
        ),
        (
            json.dumps({"drains": [{"container": CONTAINER, "name": "w\n", "due": 1, "signal": "SIGTERM"}]}),
            "drains[0].name: expected a container name",
        ),
        (
            json.dumps({"drains": [{"container": CONTAINER, "name": "w", "due": True, "signal": "SIGTERM"}]}),
            "drains[0].due: expected a time in seconds",
        ),
        (
            json.dumps({"drains": [{"container": CONTAINER, "name": "w", "due": 1, "signal": "SIGURG"}]}),
            "drains[0].signal: label org.dockyard.stop_signal: SIGURG starts the drain",
        ),
    ],
)
def test_a_corrupt_or_foreign_file_is_refused_naming_the_file_and_the_field(tmp_path, content, message):
    (tmp_path / "drains.json").write_text(content)
    with pytest.raises(drain.StateError) as raised:
        drain.DrainStore(str(tmp_path)).load()
    assert str(raised.value).startswith(str(tmp_path / "drains.json"))
    assert message in str(raised.value)
