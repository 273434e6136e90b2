"""How long an outbound delivery waits before its next attempt."""

from __future__ import annotations

import random
from datetime import timedelta


def doubling(attempts: int, base_seconds: float, max_seconds: float) -> timedelta:
    """The wait after the n-th failed attempt: doubling, capped, with some jitter.

    The jitter (up to 10 %) keeps many deliveries that failed together from
    retrying together.
    """
    seconds = min(base_seconds * 2 ** max(attempts - 1, 0), max_seconds)
    return timedelta(seconds=seconds * random.uniform(1.0, 1.1))
