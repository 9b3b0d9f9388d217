"""Retry waits that double after each failure up to a ceiling, and start small again after a
success: for reconnecting to ARI and for shipping the journal to a database that is away."""

from __future__ import annotations

import random


class Backoff:
    """``jitter`` 0.2 spreads each wait over ±20 %, so many clients cut off together do not all
    come back at the same instant."""

    def __init__(self, first: float, most: float, jitter: float = 0.0):
        self.first = first
        self.most = most
        self.jitter = jitter
        self.current = first

    def next(self) -> float:
        """The wait before the next try; the one after will be twice as long (up to ``most``)."""
        wait = self.current * (1 + self.jitter * (2 * random.random() - 1))
        self.current = min(self.current * 2, self.most)
        return wait

    def reset(self) -> None:
        self.current = self.first
