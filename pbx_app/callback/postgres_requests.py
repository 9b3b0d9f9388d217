"""Callback requests in PostgreSQL (the journal's database). A claim runs in a transaction that
first takes an advisory lock on the employee: under READ COMMITTED two engines claiming two
requests of one employee would otherwise both pass the "nobody else of theirs is being called"
test."""

from __future__ import annotations

from datetime import datetime, timezone

import psycopg
from psycopg.rows import dict_row

from ..db.postgres import PostgresConnection
from ..db.postgres_schema import pg_sql
from .requests import CALLBACKS, CLAIM, EXPIRE, FINISH, GET, INSERT, OPEN, RENEW, CallbackRequest, State, from_row, params

EMPLOYEE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('pbx_callback:' || %(employee)s))"


def _same(value):
    return value


def _time(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(timezone.utc)


class PostgresCallbacks(PostgresConnection):
    def __init__(self, url: str):
        super().__init__(url, (CALLBACKS,))

    async def _do(self, sql: str, values: dict, then_get: str | None = None, lock: str | None = None):
        conn = await self._connection()
        try:
            async with conn.transaction():
                if lock is not None:
                    await conn.execute(EMPLOYEE_LOCK, {"employee": lock})
                cur = await conn.execute(pg_sql(sql), values)
                changed = cur.rowcount
                row = None
                if then_get and changed:
                    async with conn.cursor(row_factory=dict_row) as c:
                        await c.execute(pg_sql(GET), {"id": then_get})
                        row = await c.fetchone()
        except psycopg.Error as exc:
            raise await self._fail(exc) from exc
        return changed, None if row is None else from_row(row, _time)

    async def _rows(self, sql: str, values: dict) -> list[CallbackRequest]:
        conn = await self._connection()
        try:
            async with conn.cursor(row_factory=dict_row) as c:
                await c.execute(pg_sql(sql), values)
                return [from_row(r, _time) for r in await c.fetchall()]
        except psycopg.Error as exc:
            raise await self._fail(exc) from exc

    async def add(self, request: CallbackRequest) -> bool:
        changed, _ = await self._do(INSERT, params(request, _same))
        return changed == 1

    async def get(self, request_id: str) -> CallbackRequest | None:
        rows = await self._rows(GET, {"id": request_id})
        return rows[0] if rows else None

    async def open(self, now: datetime) -> list[CallbackRequest]:
        return await self._rows(OPEN, {"now": now})

    async def claim(self, request: CallbackRequest, owner: str, now: datetime, until: datetime) -> CallbackRequest | None:
        values = {"id": request.id, "owner": owner, "now": now, "until": until}
        _, row = await self._do(CLAIM, values, request.id, lock=request.employee)
        return row

    async def renew(self, request_id: str, owner: str, until: datetime) -> bool:
        changed, _ = await self._do(RENEW, {"id": request_id, "owner": owner, "until": until})
        return changed == 1

    async def finish(self, request_id: str, owner: str, state: State, attempts: int, next_try_at: datetime,
                     answered_by: str | None = None) -> bool:
        values = {"id": request_id, "owner": owner, "state": state, "attempts": attempts,
                  "next_try_at": next_try_at, "answered_by": answered_by}
        changed, _ = await self._do(FINISH, values)
        return changed == 1

    async def expire(self, request: CallbackRequest, now: datetime) -> CallbackRequest | None:
        _, row = await self._do(EXPIRE, {"id": request.id, "now": now}, request.id)
        return row

