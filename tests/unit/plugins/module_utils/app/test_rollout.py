"""The rollout arithmetic: Marathon's upgrade strategy, step by step, for any fleet and strategy."""

import re

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.app.rollout import (
    Fleet,
    RolloutError,
    Step,
    Strategy,
    next_actions,
    plan,
)
from hypothesis import given, settings
from hypothesis import strategies as st

shares = st.integers(0, 20).map(lambda twentieths: twentieths / 20)


def test_marathon_defaults_start_every_new_instance_then_drain_every_old_one():
    steps = plan(Fleet(old=3), 3, Strategy(), "v1", "v2")
    assert steps == [Step("start", 3, "v2"), Step("wait", 3, "v2"), Step("drain", 3, "v1")]


def test_half_capacity_without_headroom_drains_half_first():
    steps = plan(Fleet(old=4), 4, Strategy(0.5, 0), "v1", "v2")
    assert [step.to_dict() for step in steps] == [
        {"action": "drain", "count": 2, "version": "v1"},
        {"action": "start", "count": 2, "version": "v2"},
        {"action": "wait", "count": 2, "version": "v2"},
        {"action": "drain", "count": 2, "version": "v1"},
        {"action": "start", "count": 2, "version": "v2"},
        {"action": "wait", "count": 2, "version": "v2"},
    ]


def test_full_health_and_no_headroom_moves_one_instance_over_as_marathon_does():
    assert Strategy(1, 0).bounds(3) == (3, 4)
    steps = plan(Fleet(old=3), 3, Strategy(1, 0), "v1", "v2")
    assert steps[:3] == [Step("start", 1, "v2"), Step("wait", 1, "v2"), Step("drain", 1, "v1")]


def test_bounds_round_as_marathon_does_without_float_error():
    assert Strategy(0.7, 0.3).bounds(10) == (7, 13)
    assert Strategy(0.55, 0.15).bounds(10) == (6, 11)


def test_scaling_starts_or_drains_only_the_difference():
    assert plan(Fleet(new_healthy=3), 10, Strategy(), "v1", "v1") == [Step("start", 7, "v1"), Step("wait", 7, "v1")]
    assert plan(Fleet(new_healthy=10), 3, Strategy(), "v1", "v1") == [Step("drain", 7, "v1")]
    assert plan(Fleet(new_healthy=3), 3, Strategy(), "v1", "v1") == []


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (lambda: Strategy(1.5, 0), "upgrade.minimum_health_capacity: expected a number between 0 and 1"),
        (lambda: Strategy(1, -0.1), "upgrade.maximum_over_capacity: expected a number between 0 and 1"),
        (lambda: Strategy(True, 0), "upgrade.minimum_health_capacity"),
    ],
)
def test_a_strategy_out_of_range_is_refused_naming_the_field(strategy, message):
    with pytest.raises(RolloutError, match=re.escape(message)):
        strategy()


def test_a_negative_count_is_refused():
    with pytest.raises(RolloutError, match=re.escape("fleet.old: a count cannot be negative")):
        next_actions(Fleet(old=-1), 3, Strategy())


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40), shares, shares)
def test_property_every_plan_keeps_the_strategy_and_ends_on_the_new_version(old, current, instances, minimum, over):
    strategy = Strategy(minimum, over)
    least, capacity = strategy.bounds(instances)
    fleet = {"old": old, "new": current}
    healthy_floor = min(least, old + current)
    steps = plan(Fleet(old=old, new_healthy=current), instances, strategy, "v1", "v2")
    assert len(steps) <= 3 * (old + current + instances) + 3
    running_ceiling = max(capacity, old + current)
    for step in steps:
        if step.action == "drain":
            fleet["old" if step.version == "v1" else "new"] -= step.count
            if step.version == "v1":
                assert fleet["old"] + fleet["new"] >= healthy_floor, (step, fleet)
        elif step.action == "start":
            fleet["starting"] = step.count
            assert fleet["old"] + fleet["new"] + step.count <= running_ceiling, (step, fleet)
        else:
            fleet["new"] += fleet.pop("starting", 0)
        assert min(fleet.values()) >= 0
    assert fleet.get("old") == 0 and fleet["new"] == instances
