"""Login rate limiting: after a few failed sign-ins for one user name, or many from one
address, further attempts are refused for a while without even checking the password."""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

WINDOW_SECONDS = 300.0
PER_NAME = 5
PER_ADDRESS = 20


class LoginLimiter:
    def __init__(self, window: float = WINDOW_SECONDS, per_name: int = PER_NAME, per_address: int = PER_ADDRESS,
                 clock: Callable[[], float] = time.monotonic):
        self.window = window
        self.limits = {"name": per_name, "address": per_address}
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def retry_after(self, name: str, address: str) -> float:
        """Seconds until this name and address may try again; 0 when they may now."""
        wait = 0.0
        for key in (("name", name.lower()), ("address", address)):
            times = self._recent(key)
            if len(times) >= self.limits[key[0]]:
                wait = max(wait, times[0] + self.window - self.clock())
        return max(wait, 0.0)

    def failed(self, name: str, address: str) -> None:
        now = self.clock()
        for key in (("name", name.lower()), ("address", address)):
            self._recent(key).append(now)

    def succeeded(self, name: str) -> None:
        self._failures.pop(("name", name.lower()), None)

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= self.clock() - self.window:
            times.popleft()
        if len(self._failures) > 100_000:  # a flood of made-up names must not grow memory forever
            self._failures = {k: v for k, v in self._failures.items() if v}
        return times
