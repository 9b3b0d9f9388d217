"""The journal in SQLite (the default): the standard sqlite3 module on one thread of its own, so
the event loop never waits on the disk. WAL lets `pbx-app history` read while the app writes;
synchronous=FULL because a shipped segment of the spool is deleted after the commit."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from .codec import iso, parse_time
from .events import JournalEvent
from .records import CallRecord
from .spool import Position
from .store import (GET_POSITION, PUT_POSITION, SELECT_CALL, SELECT_CALL_LEGS, SELECT_CALLS, SELECT_LEGS,
                    SELECT_OPEN_CALLS, SELECT_OPEN_LEGS, UPSERT, StoreError, event_params, records, schema)

SCHEMA = schema("text")


def sqlite_path(url: str) -> str:
    """sqlite:////abs/path.db → /abs/path.db; sqlite:///rel.db → rel.db (SQLAlchemy's form)."""
    rest = url.split(":", 1)[1]
    if not rest.startswith("///"):
        raise ValueError(f"{url!r}: a SQLite URL is sqlite:////absolute/path.db or sqlite:///relative.db")
    return rest[3:]


def _time(value: str | None) -> datetime | None:
    return None if value is None else parse_time(value)


class SqliteStore:
    def __init__(self, url: str):
        self.url = url
        self.path = sqlite_path(url)
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-sqlite")

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

    async def position(self, spool: str) -> Position | None:
        return await self._run(self._position, spool)

    def _position(self, spool: str) -> Position | None:
        row = self._conn().execute(GET_POSITION, {"spool": spool}).fetchone()
        return None if row is None else Position(row[0], row[1])

    async def ship(self, spool: str, expected: Position | None, events: Sequence[JournalEvent], end: Position) -> Position:
        return await self._run(self._ship, spool, expected, list(events), end)

    def _ship(self, spool: str, expected: Position | None, events: list[JournalEvent], end: Position) -> Position:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")  # takes the write lock now: a second shipper waits here
        try:
            stored = self._position(spool)
            if stored != expected:
                db.execute("ROLLBACK")
                return stored  # type: ignore[return-value]
            for event in events:
                db.execute(UPSERT[type(event)], event_params(event, iso))
            db.execute(PUT_POSITION, {"spool": spool, "segment": end.segment, "offset": end.offset,
                                      "now": iso(datetime.now(timezone.utc))})
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return end

    async def calls(self, start: datetime, end: datetime, open_only: bool = False) -> list[CallRecord]:
        return await self._run(self._calls, iso(start), iso(end), open_only)

    def _calls(self, start: str, end: str, open_only: bool) -> list[CallRecord]:
        db = self._conn()
        bounds = {"start": start, "end": end}
        db.execute("BEGIN")  # one snapshot for both reads
        try:
            call_rows = [dict(r) for r in db.execute(SELECT_OPEN_CALLS if open_only else SELECT_CALLS, bounds)]
            leg_rows = [dict(r) for r in db.execute(SELECT_OPEN_LEGS if open_only else SELECT_LEGS, bounds)]
        finally:
            db.execute("COMMIT")
        return records(call_rows, leg_rows, _time)

    async def call(self, call_id: str) -> CallRecord | None:
        return await self._run(self._call, call_id)

    def _call(self, call_id: str) -> CallRecord | None:
        db = self._conn()
        db.execute("BEGIN")
        try:
            call_rows = [dict(r) for r in db.execute(SELECT_CALL, {"call_id": call_id})]
            leg_rows = [dict(r) for r in db.execute(SELECT_CALL_LEGS, {"call_id": call_id})]
        finally:
            db.execute("COMMIT")
        found = records(call_rows, leg_rows, _time)
        return found[0] if found else None

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._drop)
        self._thread.shutdown(wait=True)
