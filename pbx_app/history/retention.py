"""PBX_HISTORY_KEEP_DAYS: calls older than that many days go, with their legs, notices and
callback requests. A batch of calls at a time, each its own short transaction and a pause
between batches, so a shipper's write never waits long behind the cleanup (SQLite has one
writer at a time); the first pass after an upgrade may remove millions, the later ones an
hour's worth. Every engine runs it: the deletes are idempotent, so two at once do no harm."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

from ..db.errors import StoreError
from .store import Store

log = logging.getLogger(__name__)
BATCH = 500  # calls per transaction: a few milliseconds of write lock
PAUSE = 0.05  # s between batches: the shippers' turn
INTERVAL = 3600.0  # s between passes


async def remove_old(store: Store, keep_days: float, now: datetime | None = None,
                     batch: int = BATCH, pause: float = PAUSE) -> int:
    """One pass: removes every call started more than ``keep_days`` ago; how many went."""
    before = (now or datetime.now(timezone.utc)) - timedelta(days=keep_days)
    removed = 0
    while True:
        gone = await store.prune(before, batch)
        removed += gone
        if gone < batch:
            return removed
        await asyncio.sleep(pause)


async def keep_history(store: Store, keep_days: float, interval: float = INTERVAL) -> None:
    """Runs a pass now and then every ``interval`` seconds, until cancelled."""
    while True:
        try:
            removed = await remove_old(store, keep_days)
            if removed:
                log.info("history: removed %d calls older than %g days (PBX_HISTORY_KEEP_DAYS)", removed, keep_days)
        except StoreError as exc:
            log.warning("history: old calls not removed this time: %s", exc)
        await asyncio.sleep(interval)
