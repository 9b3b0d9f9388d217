"""How late an ARI event reaches an engine: one that wakes from a freeze (SIGSTOP, a stuck
loop) must not act on the callers it held meanwhile, since other engines rescued them
(calls/recovery.py) and now carry them."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Callable

# A caller that waits this long behind its owner is rescued by another engine (PBX_STRANDED_AFTER
# 1.5 s, looked for every 0.5 s): an event later than this was surely acted on by someone else.
STALE_AFTER = 3.0
class Lateness:
    """How late an ARI event reaches this engine, so that one that wakes from a freeze (SIGSTOP,
    a stuck loop) does not act on what happened meanwhile: by then the callers it held were
    rescued and belong to another engine. Measured against the least late event seen lately, so
    that a clock difference between Asterisk's host and ours cancels out; that base may rise by
    1 ms a second at most (clocks drift slowly; a freeze is seconds at once)."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self._base: float | None = None
        self._at = 0.0

    def of(self, event: dict) -> float:
        try:
            sent = datetime.fromisoformat(event["timestamp"]).timestamp()  # strptime: 5x the cost, every event
        except (KeyError, TypeError, ValueError):
            return 0.0
        now = self.clock()
        delay = now - sent
        if self._base is None or delay < self._base + (now - self._at) * 0.001:
            self._base, self._at = delay, now
        return max(0.0, delay - self._base)
