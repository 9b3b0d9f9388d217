"""Finding finished calls in the journal and making their notices. A cursor on the calls'
start time keeps each look small: it stays behind the oldest call still in progress (and a
margin for engines that ship their spools late), so a look reads only the recent calls, in
batches. Now and then a look goes back the whole horizon (PBX_NOTICE_MAX_AGE) for calls that
reached the database late — an engine whose database was away for a while; the notice_calls
table makes every call count once either way."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Callable

from ..policy.model import Policy
from .notice import notices_for
from .outbox import Outbox

log = logging.getLogger(__name__)

LATE = timedelta(minutes=5)  # how late an engine's spool may reach the database and still be seen at once
STUCK = timedelta(hours=6)  # a call open longer than this (its end lost) stops holding the cursor
SWEEP_EVERY = timedelta(minutes=5)


class Scanner:
    def __init__(self, outbox: Outbox, policy: Callable[[], Policy], *, webhook: bool, max_age: float, batch: int):
        self.outbox = outbox
        self.policy = policy
        self.webhook = webhook
        self.max_age = timedelta(seconds=max_age)
        self.batch = batch
        self.since: datetime | None = None  # the first notifier's start: nothing before it is told of
        self.cursor: datetime | None = None
        self.last_sweep: datetime | None = None

    def horizon(self, now: datetime) -> datetime:
        return max(now - self.max_age, self.since or now)

    async def scan(self, now: datetime | None = None) -> int:
        """One look; the number of calls turned into notices (or found to need none)."""
        now = now or datetime.now(timezone.utc)
        if self.since is None:
            self.since = await self.outbox.enabled_since(now)
        horizon = self.horizon(now)
        sweep = self.last_sweep is None or now - self.last_sweep >= SWEEP_EVERY
        lo = horizon if sweep or self.cursor is None else max(horizon, self.cursor)
        seen, caught_up = 0, False
        while True:
            calls = await self.outbox.unseen_calls(lo, now + timedelta(minutes=1), self.batch)
            policy = self.policy()
            made = [(call.call_id, notices_for(call, policy, self.webhook)) for call in calls]
            await self.outbox.add(made, now)
            for call, (_, notices) in zip(calls, made):
                if notices:
                    log.info("call %s from %s: %d notice(s) (%s)", call.call_id, call.caller or "?", len(notices),
                             ", ".join(sorted({n.kind for n in notices})))
            seen += len(calls)
            caught_up = len(calls) < self.batch
            if caught_up or seen >= 20 * self.batch:  # bounded work per look; the rest next time
                break
        if caught_up:  # else the cursor stays, so the next look starts at what is left
            if sweep:
                self.last_sweep = now
            oldest_open = await self.outbox.oldest_open(max(horizon, now - STUCK))
            self.cursor = min(oldest_open or now, now) - LATE
        return seen
