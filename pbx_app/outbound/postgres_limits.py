"""Outbound counts in PostgreSQL (the journal's database). Counting and recording run under a
transaction-scoped advisory lock on the site: under READ COMMITTED two engines would otherwise
both count 99 of 100 and both dial."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
from psycopg.rows import dict_row

from ..db.postgres import PostgresConnection
from ..db.postgres_schema import pg_sql
from .limits import ALERT, ALERT_ROW, COUNTS, KEEP, PRUNE, RECORD, WINDOW, Limit, OutboundCall, OUTBOUND, Quota, over

SITE_LOCK = 0x7062785F6F7563  # held while one call is counted and recorded
NEVER = datetime(2000, 1, 1, tzinfo=timezone.utc)


class PostgresLimits(PostgresConnection):
    def __init__(self, url: str):
        super().__init__(url, (OUTBOUND,))
        self._pruned: datetime | None = None

    async def take(self, call: OutboundCall, quota: Quota, now: datetime, record: bool = True,
                   spare: int = 0) -> Limit | None:
        values = {"number": call.number, "employee": call.employee, "purpose": call.purpose, "ref": call.ref,
                  "now": now, "since": now - WINDOW, "before": now - KEEP}
        prune = self._pruned is None or now - self._pruned > WINDOW / 6
        conn = await self._connection()
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SITE_LOCK,))
                if prune:
                    await conn.execute(pg_sql(PRUNE), values)
                    self._pruned = now
                async with conn.cursor(row_factory=dict_row) as c:
                    await c.execute(pg_sql(COUNTS), values)
                    limit = over(await c.fetchone(), quota, spare)
                if limit is None and record:
                    await conn.execute(pg_sql(RECORD), values)
        except psycopg.Error as exc:
            raise await self._fail(exc) from exc
        return limit

    async def first_to_tell(self, name: str, now: datetime, every: timedelta) -> bool:
        values = {"name": name, "never": NEVER, "now": now, "since": now - every}
        conn = await self._connection()
        try:
            async with conn.transaction():
                await conn.execute(pg_sql(ALERT_ROW), values)
                cur = await conn.execute(pg_sql(ALERT), values)
                return cur.rowcount == 1
        except psycopg.Error as exc:
            raise await self._fail(exc) from exc
