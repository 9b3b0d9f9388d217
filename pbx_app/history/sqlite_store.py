"""The journal in SQLite (the default): the standard sqlite3 module on one thread of its own, so
the event loop never waits on the disk. WAL lets `pbx-app history` read while the app writes;
synchronous=FULL because a shipped segment of the spool is deleted after the commit."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import AsyncIterator, Sequence

from ..db.codec import iso, read_time as _time
from ..db.sqlite_thread import SqliteOnThread
from .events import JournalEvent
from .journal_schema import JOURNAL
from .records import CallRecord
from .spool import Position
from .store import (GET_POSITION, page_batches, PRUNE_WITH_CALL, PUT_POSITION, SELECT_CALL, SELECT_CALL_LEGS, SELECT_CALLS,
                    SELECT_LEGS, SELECT_OPEN_CALLS, SELECT_OPEN_LEGS, SELECT_TOUCHED_CALLS, SELECT_TOUCHED_LEGS,
                    UPDATE_SUMMARY, UPSERT, CallFilter, count_sql, event_params, filter_params, page_sql, prune_sql,
                    records, summary)


class SqliteStore(SqliteOnThread):
    def __init__(self, url: str):
        super().__init__(url, (JOURNAL,), "journal-sqlite")

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
            touched = []
            for call_id in sorted({e.call_id for e in events}):
                touched += records([dict(r) for r in db.execute(SELECT_TOUCHED_CALLS, {"call_id": call_id})],
                                   [dict(r) for r in db.execute(SELECT_TOUCHED_LEGS, {"call_id": call_id})], _time)
            db.executemany(UPDATE_SUMMARY, [summary(c) for c in touched])
            db.execute(PUT_POSITION, {"spool": spool, "segment": end.segment, "offset": end.offset,
                                      "now": iso(datetime.now(timezone.utc))})
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return end

    def _read(self, *steps: tuple[str, dict]) -> list[list[dict]]:
        """Reads in one snapshot (a call's legs as of its row); WAL: no writer waits on it."""
        db = self._conn()
        db.execute("BEGIN")
        try:
            return [[dict(r) for r in db.execute(sql, params)] for sql, params in steps]
        finally:
            db.execute("COMMIT")

    async def calls(self, start: datetime, end: datetime, open_only: bool = False) -> list[CallRecord]:
        bounds = {"start": iso(start), "end": iso(end)}
        call_rows, leg_rows = await self._run(self._read, (SELECT_OPEN_CALLS if open_only else SELECT_CALLS, bounds),
                                              (SELECT_OPEN_LEGS if open_only else SELECT_LEGS, bounds))
        return records(call_rows, leg_rows, _time)

    async def call(self, call_id: str) -> CallRecord | None:
        call_rows, leg_rows = await self._run(self._read, (SELECT_CALL, {"call_id": call_id}),
                                              (SELECT_CALL_LEGS, {"call_id": call_id}))
        found = records(call_rows, leg_rows, _time)
        return found[0] if found else None

    async def page(self, f: CallFilter, limit: int, offset: int = 0,
                   after: tuple[datetime, str] | None = None) -> list[CallRecord]:
        calls_sql, legs_sql = page_sql(f, after is not None)
        params = filter_params(f, iso, limit=limit, offset=offset, after=after)
        call_rows, leg_rows = await self._run(self._read, (calls_sql, params), (legs_sql, params))
        return records(call_rows, leg_rows, _time)

    async def count(self, f: CallFilter, cap: int) -> tuple[int, int]:
        missed = replace(f, missed=True)
        [total], [lost] = await self._run(self._read, (count_sql(f), filter_params(f, iso, cap=cap)),
                                              (count_sql(missed), filter_params(missed, iso, cap=cap)))
        return total["n"], lost["n"]

    def batches(self, f: CallFilter, size: int) -> AsyncIterator[list[CallRecord]]:
        return page_batches(self.page, f, size)

    async def prune(self, before: datetime, batch: int) -> int:
        return await self._run(self._prune, iso(before), batch)

    def _prune(self, before: str, batch: int) -> int:
        db = self._conn()
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        db.execute("BEGIN IMMEDIATE")
        try:
            *_, last = [db.execute(sql, {"before": before, "batch": batch})
                        for sql in prune_sql([t for t in PRUNE_WITH_CALL if t in tables])]
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return last.rowcount
