"""Outbound counts in SQLite (the journal's file), on a thread of their own like the journal."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..db.sqlite_thread import SqliteOnThread
from ..db.codec import iso
from .limits import ALERT, ALERT_ROW, COUNTS, KEEP, PRUNE, RECORD, WINDOW, Limit, OutboundCall, OUTBOUND, Quota, over

NEVER = datetime(2000, 1, 1)


class SqliteLimits(SqliteOnThread):
    def __init__(self, url: str):
        super().__init__(url, (OUTBOUND,), "outbound-sqlite")
        self._pruned: datetime | None = None

    async def take(self, call: OutboundCall, quota: Quota, now: datetime, record: bool = True,
                   spare: int = 0) -> Limit | None:
        values = {"number": call.number, "employee": call.employee, "purpose": call.purpose, "ref": call.ref,
                  "now": iso(now), "since": iso(now - WINDOW), "before": iso(now - KEEP)}
        prune = self._pruned is None or now - self._pruned > WINDOW / 6
        if prune:
            self._pruned = now

        def take() -> Limit | None:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                if prune:
                    db.execute(PRUNE, values)
                limit = over(dict(db.execute(COUNTS, values).fetchone()), quota, spare)
                if limit is None and record:
                    db.execute(RECORD, values)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return limit

        return await self._run(take)

    async def first_to_tell(self, name: str, now: datetime, every: timedelta) -> bool:
        values = {"name": name, "never": iso(NEVER.replace(tzinfo=now.tzinfo)), "now": iso(now), "since": iso(now - every)}

        def tell() -> bool:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(ALERT_ROW, values)
                won = db.execute(ALERT, values).rowcount == 1
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return won

        return await self._run(tell)
