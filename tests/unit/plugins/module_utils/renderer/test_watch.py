import threading

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul import ConsulError
from ansible_collections.dockyard.platform.plugins.module_utils.renderer import config as configuration
from ansible_collections.dockyard.platform.plugins.module_utils.renderer import watch
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.config import WatchSettings

FAST = WatchSettings(block_wait=60, min_interval=0, backoff=0.01, max_backoff=0.01)


def test_index_rules():
    assert watch.next_index(0, 42) == 42
    assert watch.next_index(42, 50) == 50
    assert watch.next_index(42, 41) == 0  # went backwards: start over
    assert watch.next_index(0, 0) == 1  # at least 1, so that the next query blocks
    assert watch.next_index(1, 0) == 1
    assert watch.next_index(42, 0) == 1  # a query at 1 does not block on an index above it: a start over too


def test_defaults_follow_consul_template_where_it_matters():
    parsed = configuration.parse({}, {})
    assert parsed.watch.block_wait == 60  # consul-template's block_query_wait
    assert parsed.watch.max_stale == 2
    assert parsed.watch.max_backoff == 3  # ours: recovery within seconds (consul-template: 1m)


@pytest.mark.parametrize("block_wait", [1, 5, 60, 300, 600])
def test_the_wait_sent_leaves_room_for_consuls_jitter(block_wait):
    wait = watch.query_wait(block_wait)
    assert wait < block_wait
    assert wait * (1 + 1 / 16) == pytest.approx(block_wait)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"block_wait": "500ms"}, "watch.block_wait must be at least 1s"),
        ({"backoff": 0}, "watch.backoff must be more than 0"),
        ({"backoff": "2s", "max_backoff": "1s"}, "watch.max_backoff not below it"),
        ({"max_stale": "soon"}, "watch.max_stale: expected a duration"),
        ({"retry": "1s"}, "watch: unknown setting(s) retry"),
    ],
)
def test_bad_watch_settings_name_the_setting(raw, message):
    with pytest.raises(configuration.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        configuration.parse({"watch": raw}, {})


class FakeDependency:
    """Answers scripted in advance: (data, index) pairs, or exceptions to raise; records what each query carried."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []
        self.waits = []
        self.done = threading.Event()

    def fetch(self, client, index=0, wait=None):
        self.calls.append(index)
        self.waits.append(wait)
        if not self.answers:
            self.done.set()
            threading.Event().wait(10)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def run_view(answers, settings=FAST, failures=0):
    dependency = FakeDependency(answers)
    delivered = []
    view = watch.View(dependency, None, settings, lambda dep, data: delivered.append(data), failures=failures)
    view.start()
    assert dependency.done.wait(5)
    view.stop()
    return view, dependency, delivered


def test_view_delivers_changes_only_and_resets_index():
    answers = [("a", 10), ("a", 10), ("b", 12), ("b", 5), ConsulError("down"), ("c", 20), ("c", 21)]
    view, dependency, delivered = run_view(answers)
    assert delivered == ["a", "b", "c"]
    # 0 first; same index again; 10 -> 12; 12 then backwards to 5 -> 0; error -> 0; then 20.
    assert dependency.calls == [0, 10, 10, 12, 0, 0, 20, 21]
    assert view.failures == 0
    assert view.stats.errors == 1
    assert view.stats.requests == len(dependency.calls)


def test_an_index_of_0_is_raised_to_1_so_the_next_query_blocks():
    _view, dependency, delivered = run_view([("a", 0), ("a", 0), ("b", 3)])
    assert dependency.calls == [0, 1, 1, 3]
    assert delivered == ["a", "b"]


def test_every_query_is_answered_within_block_wait():
    _view, dependency, _delivered = run_view([("a", 4)], WatchSettings(block_wait=5, min_interval=0))
    assert all(wait == watch.query_wait(5) for wait in dependency.waits)


def test_view_survives_any_exception_and_counts_it():
    errors = [KeyError("Key"), TypeError("not a list"), ConsulError("truncated")]
    view, dependency, delivered = run_view([*errors, ("a", 7)])
    assert view.is_alive() or view.stopping
    assert delivered == ["a"]
    assert view.stats.errors == 3
    assert view.failures == 0  # reset by the success
    assert dependency.calls == [0, 0, 0, 0, 7]


def test_failures_count_while_they_last():
    view, _dependency, _delivered = run_view([ConsulError("down")] * 4)
    assert view.failures == 4


def test_a_replacement_view_backs_off_before_its_first_query():
    settings = WatchSettings(block_wait=60, min_interval=0, backoff=0.4, max_backoff=0.4)
    dependency = FakeDependency([("a", 3)])
    view = watch.View(dependency, None, settings, lambda dep, data: None, failures=5)
    view.start()
    threading.Event().wait(0.1)
    assert dependency.calls == []  # still backing off (0.2 to 0.4 s)
    assert dependency.done.wait(5)
    view.stop()
    assert dependency.calls == [0, 3]


def test_a_stopped_view_neither_counts_nor_delivers():
    gate = threading.Event()

    class Slow:
        def fetch(self, client, index=0, wait=None):
            gate.wait(5)
            raise ConsulError("answered after the stop")

    view = watch.View(Slow(), None, FAST, lambda dep, data: None)
    view.start()
    view.stop()
    gate.set()
    view.join(5)
    assert not view.is_alive()
    assert (view.failures, view.stats.errors) == (0, 0)
