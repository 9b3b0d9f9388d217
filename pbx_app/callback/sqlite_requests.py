"""Callback requests in SQLite (the journal's file): one thread of its own, as the journal's
store; BEGIN IMMEDIATE makes each claim one writer at a time, so two engines on one host never
both win."""

from __future__ import annotations

from datetime import datetime

from ..db.codec import iso, read_time as _time
from ..db.sqlite_thread import SqliteOnThread
from .requests import CALLBACKS, CLAIM, EXPIRE, FINISH, GET, INSERT, OPEN, RENEW, CallbackRequest, State, from_row, params


class SqliteCallbacks(SqliteOnThread):
    def __init__(self, url: str):
        super().__init__(url, (CALLBACKS,), "callbacks-sqlite")

    def _write(self, sql: str, values: dict, then_get: str | None = None) -> tuple[int, CallbackRequest | None]:
        """One statement in a write transaction; the row after it when ``then_get`` is an id."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            changed = db.execute(sql, values).rowcount
            row = db.execute(GET, {"id": then_get}).fetchone() if then_get and changed else None
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return changed, None if row is None else from_row(dict(row), _time)

    async def add(self, request: CallbackRequest) -> bool:
        changed, _ = await self._run(self._write, INSERT, params(request, iso))
        return changed == 1

    async def get(self, request_id: str) -> CallbackRequest | None:
        def get():
            row = self._conn().execute(GET, {"id": request_id}).fetchone()
            return None if row is None else from_row(dict(row), _time)
        return await self._run(get)

    async def open(self, now: datetime) -> list[CallbackRequest]:
        def listed():
            return [from_row(dict(r), _time) for r in self._conn().execute(OPEN, {"now": iso(now)})]
        return await self._run(listed)

    async def claim(self, request: CallbackRequest, owner: str, now: datetime, until: datetime) -> CallbackRequest | None:
        values = {"id": request.id, "owner": owner, "now": iso(now), "until": iso(until)}
        _, row = await self._run(self._write, CLAIM, values, request.id)
        return row

    async def renew(self, request_id: str, owner: str, until: datetime) -> bool:
        changed, _ = await self._run(self._write, RENEW, {"id": request_id, "owner": owner, "until": iso(until)})
        return changed == 1

    async def finish(self, request_id: str, owner: str, state: State, attempts: int, next_try_at: datetime,
                     answered_by: str | None = None) -> bool:
        values = {"id": request_id, "owner": owner, "state": state, "attempts": attempts,
                  "next_try_at": iso(next_try_at), "answered_by": answered_by}
        changed, _ = await self._run(self._write, FINISH, values)
        return changed == 1

    async def expire(self, request: CallbackRequest, now: datetime) -> CallbackRequest | None:
        _, row = await self._run(self._write, EXPIRE, {"id": request.id, "now": iso(now)}, request.id)
        return row

