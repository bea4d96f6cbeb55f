# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How long the daemons wait before retrying what failed (Consul, Docker)."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, cap: float, rand=random.random) -> float:
    """Delay before retry number `attempt` (1-based): exponential, capped, jittered into [d/2, d]."""
    delay = min(cap, base * (2 ** min(attempt - 1, 32)))
    return delay / 2 + rand() * delay / 2
