"""Sign-in limits. An attempt is counted when it starts, before the password is checked, so a
burst of requests sent at once gets no more guesses than the same requests one after another.

- one (name, address) pair: after ``per_pair`` failures it waits out the window. Only that pair
  waits: someone failing on a name from their address cannot lock its owner out elsewhere;
- one address, whatever the names: ``per_address`` failures (a spray of names);
- one name from all addresses (many attackers): no lockout, a slowdown — each attempt on that
  name waits a little more before its check, up to ``max_delay``. Its owner is never refused
  for it, only slowed down for a few seconds.

A success clears the pair's failures; the limiter forgets keys whose failures are all older
than the window, so made-up names do not grow memory for ever."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

WINDOW_SECONDS = 300.0
PER_PAIR = 5
PER_ADDRESS = 30
NAME_HOT = 10  # failures on one name (all addresses) before the slowdown starts
DELAY_STEP = 0.25  # seconds more per failure past NAME_HOT
MAX_DELAY = 3.0
MAX_KEYS = 100_000


@dataclass(frozen=True)
class Attempt:
    name: str
    address: str
    at: float
    wait: float  # > 0: refused, retry after this many seconds (nothing was counted)
    delay: float  # seconds to wait before checking the password (the name is under attack)


class LoginLimiter:
    def __init__(self, window: float = WINDOW_SECONDS, per_pair: int = PER_PAIR, per_address: int = PER_ADDRESS,
                 name_hot: int = NAME_HOT, delay_step: float = DELAY_STEP, max_delay: float = MAX_DELAY,
                 clock: Callable[[], float] = time.monotonic):
        self.window = window
        self.per_pair = per_pair
        self.per_address = per_address
        self.name_hot = name_hot
        self.delay_step = delay_step
        self.max_delay = max_delay
        self.clock = clock
        self._times: dict[tuple, deque[float]] = {}

    def begin(self, name: str, address: str) -> Attempt:
        """Checks and counts one attempt, with no await in between: call it before the hash."""
        name = name.lower()
        now = self.clock()
        keys = {"pair": ("pair", name, address), "address": ("address", address), "name": ("name", name)}
        wait = 0.0
        for kind, limit in (("pair", self.per_pair), ("address", self.per_address)):
            times = self._recent(keys[kind], now)
            if len(times) >= limit:
                wait = max(wait, times[-limit] + self.window - now)
        if wait > 0:
            return Attempt(name, address, now, wait, 0.0)
        on_name = self._recent(keys["name"], now)
        delay = 0.0
        if len(on_name) >= self.name_hot:
            delay = min(self.max_delay, self.delay_step * (len(on_name) - self.name_hot + 1))
        for key in keys.values():
            self._recent(key, now).append(now)
        return Attempt(name, address, now, 0.0, delay)

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the pair starts afresh and this attempt counts nowhere."""
        self._times.pop(("pair", attempt.name, attempt.address), None)
        for key in (("address", attempt.address), ("name", attempt.name)):
            times = self._times.get(key)
            if times is not None and attempt.at in times:
                times.remove(attempt.at)

    def _recent(self, key: tuple, now: float) -> deque[float]:
        times = self._times.get(key)
        if times is None:
            if len(self._times) >= MAX_KEYS:
                self._forget(now)
            times = self._times[key] = deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def _forget(self, now: float) -> None:
        self._times = {k: v for k, v in self._times.items() if v and v[-1] > now - self.window}
        if len(self._times) >= MAX_KEYS:  # a flood inside one window: keep the newest half
            newest = sorted(self._times.items(), key=lambda kv: kv[1][-1])[len(self._times) // 2:]
            self._times = dict(newest)


class RequestRate:
    """A token bucket per signed-in user for the API: a page open in a browser asks a few times
    a second at most; a script asking thousands of times a second gets 429 for all but ``rate``
    of them, and the 429 costs the page next to nothing (no policy view is built)."""

    def __init__(self, rate: float = 20.0, burst: float = 40.0, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # user → (tokens, when)

    def take(self, user: str) -> float:
        """0 when the request may go on; else the seconds until it may."""
        now = self.clock()
        tokens, when = self._buckets.get(user, (self.burst, now))
        tokens = min(self.burst, tokens + (now - when) * self.rate)
        if tokens < 1:
            self._buckets[user] = (tokens, now)
            return (1 - tokens) / self.rate
        if len(self._buckets) > MAX_KEYS:
            self._buckets.clear()
        self._buckets[user] = (tokens - 1, now)
        return 0.0
