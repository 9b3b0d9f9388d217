"""The journal in SQLite (the default): the standard sqlite3 module on one thread of its own, so
the event loop never waits on the disk. WAL lets `pbx-app history` read while the app writes;
synchronous=FULL because a shipped segment of the spool is deleted after the commit."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

from .codec import iso, parse_time
from .sqlite_thread import SqliteOnThread
from .events import JournalEvent
from .records import CallRecord
from .spool import Position
from .store import (GET_POSITION, PUT_POSITION, SELECT_CALL, SELECT_CALL_LEGS, SELECT_CALLS, SELECT_LEGS,
                    SELECT_OPEN_CALLS, SELECT_OPEN_LEGS, UPSERT, event_params, records, schema)

SCHEMA = schema("text")


def _time(value: str | None) -> datetime | None:
    return None if value is None else parse_time(value)


class SqliteStore(SqliteOnThread):
    def __init__(self, url: str):
        super().__init__(url, SCHEMA, "journal-sqlite")

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
