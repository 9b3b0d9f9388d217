"""Callback requests in SQLite (the journal's file): one thread of its own, as the journal's
store; BEGIN IMMEDIATE makes each claim one writer at a time, so two engines on one host never
both win."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from ..history.codec import iso, parse_time
from ..history.sqlite_store import sqlite_path
from ..history.store import StoreError
from .requests import CLAIM, EXPIRE, FINISH, GET, INSERT, OPEN, RENEW, CallbackRequest, State, from_row, params, schema

SCHEMA = schema("text")


def _time(value: str | None) -> datetime | None:
    return None if value is None else parse_time(value)


class SqliteCallbacks:
    def __init__(self, url: str):
        self.url = url
        self.path = sqlite_path(url)
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callbacks-sqlite")

    async def _run(self, fn, *args):
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
        except (sqlite3.Error, OSError) as exc:
            self._drop()
            raise StoreError(f"{self.path}: {exc}") from exc

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
            self._db = db
        return self._db

    def _drop(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()
            except sqlite3.Error:
                pass

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

    async def add(self, request: CallbackRequest) -> None:
        await self._run(self._write, INSERT, params(request, iso))

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

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._drop)
        self._thread.shutdown(wait=True)
