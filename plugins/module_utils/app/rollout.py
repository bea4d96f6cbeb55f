# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How many instances to start and to drain next, by Marathon's upgrade strategy.

The deployer steps a rollout itself (Swarm's own rolling update cannot wait
for the routers): start new instances, wait until they are healthy and UP on
every router, drain old ones, repeat. This module is only the arithmetic,
so that the deployer, check mode's plan and the tests share it:

- minimum_health_capacity (0-1) times the instance count, rounded up, is
  how many healthy instances must serve at every moment;
- maximum_over_capacity (0-1) times the instance count, rounded down, is how
  many more than the instance count may run at once;
- with both at their limits (1 and 0) nothing could move: as Marathon does,
  one instance over is allowed so that the rollout can start.

next_actions() looks only at the fleet as it is now, so the deployer asks it
again after every wait and follows what really happened (an instance that
never turned healthy, one that Swarm replaced). plan() runs it on the
assumption that every started instance turns healthy: that is check mode's plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction


class RolloutError(ValueError):
    """A strategy or fleet that no rollout can follow."""


@dataclass(frozen=True)
class Strategy:
    minimum_health_capacity: float = 1.0
    maximum_over_capacity: float = 1.0

    def __post_init__(self):
        for name in ("minimum_health_capacity", "maximum_over_capacity"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise RolloutError(f"upgrade.{name}: expected a number between 0 and 1, got {value!r}")

    def bounds(self, instances: int) -> tuple:
        """(healthy instances that must always serve, instances that may run at once) for an instance count."""
        # Fractions: 0.7 * 10 must give 7, not 7.000000000000001 rounded up to 8.
        minimum = math.ceil(Fraction(str(self.minimum_health_capacity)) * instances)
        capacity = math.floor(Fraction(str(1 + self.maximum_over_capacity)) * instances)
        if minimum >= instances and capacity <= instances:
            capacity = instances + 1
        return minimum, capacity


@dataclass(frozen=True)
class Fleet:
    """The instances of an app now: old ones (earlier versions, serving), new ones healthy and still starting."""

    old: int = 0
    new_healthy: int = 0
    new_starting: int = 0

    @property
    def healthy(self) -> int:
        return self.old + self.new_healthy

    @property
    def running(self) -> int:
        return self.old + self.new_healthy + self.new_starting


@dataclass(frozen=True)
class Actions:
    drain_old: int = 0
    drain_new: int = 0
    start_new: int = 0

    @property
    def idle(self) -> bool:
        return not (self.drain_old or self.drain_new or self.start_new)


def next_actions(fleet: Fleet, instances: int, strategy: Strategy) -> Actions:
    """What to do now to move fleet towards `instances` healthy new instances and no old one.

    Drains come first (they free capacity), then starts. Old instances are
    drained only as far as the healthy count stays at the minimum (or where
    it is, if it is below already); new ones beyond the instance count
    (scaling down) go whatever the minimum, as scaling down asks for.
    """
    for name in ("old", "new_healthy", "new_starting"):
        if getattr(fleet, name) < 0:
            raise RolloutError(f"fleet.{name}: a count cannot be negative")
    if instances < 0:
        raise RolloutError("instances: a count cannot be negative")
    minimum, capacity = strategy.bounds(instances)
    drain_new = max(0, fleet.new_healthy + fleet.new_starting - instances) if fleet.old == 0 else 0
    drain_new = min(drain_new, fleet.new_healthy)
    drain_old = min(fleet.old, max(0, fleet.healthy - minimum))
    new = fleet.new_healthy - drain_new + fleet.new_starting
    room = capacity - (fleet.old - drain_old) - new
    start_new = max(0, min(instances - new, room))
    return Actions(drain_old=drain_old, drain_new=drain_new, start_new=start_new)


@dataclass(frozen=True)
class Step:
    """One step of a plan: drain or start `count` instances of `version`, or wait for the started ones."""

    action: str  # drain, start or wait
    count: int
    version: str

    def to_dict(self) -> dict:
        return {"action": self.action, "count": self.count, "version": self.version}


def plan(fleet: Fleet, instances: int, strategy: Strategy, old_version: str, new_version: str) -> list:
    """The steps next_actions() takes when every started instance turns healthy; [] when nothing is to do."""
    steps = []
    # Each round either finishes or moves at least one instance; this bound is never reached.
    for _round in range(2 * (fleet.running + instances) + 4):
        actions = next_actions(fleet, instances, strategy)
        if actions.idle and not fleet.new_starting:
            return steps
        if actions.drain_old:
            steps.append(Step("drain", actions.drain_old, old_version))
        if actions.drain_new:
            steps.append(Step("drain", actions.drain_new, new_version))
        if actions.start_new:
            steps.append(Step("start", actions.start_new, new_version))
        starting = fleet.new_starting + actions.start_new
        if starting:
            steps.append(Step("wait", starting, new_version))
        fleet = Fleet(
            old=fleet.old - actions.drain_old,
            new_healthy=fleet.new_healthy - actions.drain_new + starting,
        )
    raise RolloutError(f"no plan reaches {instances} instance(s) from {fleet}")  # pragma: no cover - see above
