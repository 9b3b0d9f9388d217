"""The journal in PostgreSQL (PBX_DATABASE_URL=postgresql://…), through psycopg 3's asyncio
connection. One connection, opened on first use and again after it breaks; times are
timestamptz."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timezone
from typing import AsyncIterator, Sequence

import psycopg
from psycopg.rows import dict_row

from ..db.postgres import PostgresConnection
from ..db.postgres_schema import pg_sql
from .events import JournalEvent
from .journal_schema import JOURNAL
from .records import CallRecord
from .spool import Position
from .store import (GET_POSITION, page_batches, PRUNE_WITH_CALL, PUT_POSITION, SELECT_CALL, SELECT_CALL_LEGS, SELECT_CALLS,
                    SELECT_LEGS, SELECT_OPEN_CALLS, SELECT_OPEN_LEGS, SELECT_TOUCHED_CALLS_ANY, SELECT_TOUCHED_LEGS_ANY,
                    UPDATE_SUMMARY, UPSERT, CallFilter, count_sql, event_params, filter_params, page_sql, prune_sql,
                    records, summary)

__all__ = ["PostgresStore", "pg_sql"]

# The row a first shipper takes; a second one waits on it, then sees the first one's position.
CLAIM_POSITION = """
    INSERT INTO journal_spools (spool, segment_no, byte_offset) VALUES (:spool, -1, -1)
    ON CONFLICT (spool) DO NOTHING"""


def _same(value):
    return value


def _time(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(timezone.utc)


class PostgresStore(PostgresConnection):
    def __init__(self, url: str):
        super().__init__(url, (JOURNAL,))
        self._prune_tables: list[str] | None = None

    async def position(self, spool: str) -> Position | None:
        async with self._turn:
            return await self._position(spool)

    async def _position(self, spool: str) -> Position | None:
        conn = await self._connection()
        try:
            cur = await conn.execute(pg_sql(GET_POSITION), {"spool": spool})
            row = await cur.fetchone()
        except psycopg.Error as exc:
            raise await self._fail(exc) from exc
        return None if row is None else Position(row[0], row[1])

    async def ship(self, spool: str, expected: Position | None, events: Sequence[JournalEvent], end: Position) -> Position:
        async with self._turn:
            return await self._ship(spool, expected, events, end)

    async def _ship(self, spool: str, expected: Position | None, events: Sequence[JournalEvent], end: Position) -> Position:
        conn = await self._connection()
        try:
            async with conn.transaction():
                cur = await conn.execute(pg_sql(GET_POSITION + " FOR UPDATE"), {"spool": spool})
                row = await cur.fetchone()
                stored = None if row is None else Position(row[0], row[1])
                if stored is None and expected is None:
                    # Nobody has shipped this spool yet: take the row now, so a second shipper waits.
                    await conn.execute(pg_sql(CLAIM_POSITION), {"spool": spool})
                    cur = await conn.execute(pg_sql(GET_POSITION + " FOR UPDATE"), {"spool": spool})
                    row = await cur.fetchone()
                    stored = None if row == (-1, -1) else Position(row[0], row[1])
                if stored != expected:
                    raise _Moved(stored)
                async with conn.cursor() as cur:
                    for event in events:  # in order: a leg's start before its end
                        await cur.execute(pg_sql(UPSERT[type(event)]), event_params(event, _same))
                await self._summarise(conn, {e.call_id for e in events})
                await conn.execute(pg_sql(PUT_POSITION), {"spool": spool, "segment": end.segment, "offset": end.offset,
                                                          "now": datetime.now(timezone.utc)})
        except _Moved as moved:
            return moved.position  # type: ignore[return-value]
        except psycopg.Error as exc:
            raise await self._fail(exc) from exc
        return end

    async def _summarise(self, conn: psycopg.AsyncConnection, call_ids: set[str]) -> None:
        """The touched calls' summaries, from their rows as they now stand (two reads a batch)."""
        ids = {"ids": sorted(call_ids)}
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(pg_sql(SELECT_TOUCHED_CALLS_ANY), ids)
            call_rows = await cur.fetchall()
            await cur.execute(pg_sql(SELECT_TOUCHED_LEGS_ANY), ids)
            found = records(call_rows, await cur.fetchall(), _time)
            if found:
                await cur.executemany(pg_sql(UPDATE_SUMMARY), [summary(c) for c in found])

    async def _read(self, *steps: tuple[str, dict]) -> list[list[dict]]:
        """Reads in one snapshot (a call's legs as of its row). Shielded: a reader that goes away
        (a cancelled download) must not leave the shared connection mid-transaction."""
        return await asyncio.shield(self._read_in_turn(steps))

    async def _read_in_turn(self, steps) -> list[list[dict]]:
        async with self._turn:
            return await self._read_now(steps)

    async def _read_now(self, steps) -> list[list[dict]]:
        conn = await self._connection()
        out = []
        try:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                async with conn.cursor(row_factory=dict_row) as cur:
                    for sql, params in steps:
                        await cur.execute(pg_sql(sql), params)
                        out.append(await cur.fetchall())
        except psycopg.Error as exc:
            raise await self._fail(exc) from exc
        return out

    async def calls(self, start: datetime, end: datetime, open_only: bool = False) -> list[CallRecord]:
        bounds = {"start": start, "end": end}
        call_rows, leg_rows = await self._read((SELECT_OPEN_CALLS if open_only else SELECT_CALLS, bounds),
                                               (SELECT_OPEN_LEGS if open_only else SELECT_LEGS, bounds))
        return records(call_rows, leg_rows, _time)

    async def call(self, call_id: str) -> CallRecord | None:
        call_rows, leg_rows = await self._read((SELECT_CALL, {"call_id": call_id}), (SELECT_CALL_LEGS, {"call_id": call_id}))
        found = records(call_rows, leg_rows, _time)
        return found[0] if found else None

    async def page(self, f: CallFilter, limit: int, offset: int = 0,
                   after: tuple[datetime, str] | None = None) -> list[CallRecord]:
        calls_sql, legs_sql = page_sql(f, after is not None)
        params = filter_params(f, _same, limit=limit, offset=offset, after=after)
        call_rows, leg_rows = await self._read((calls_sql, params), (legs_sql, params))
        return records(call_rows, leg_rows, _time)

    async def count(self, f: CallFilter, cap: int) -> tuple[int, int]:
        missed = replace(f, missed=True)
        [total], [lost] = await self._read((count_sql(f), filter_params(f, _same, cap=cap)),
                                               (count_sql(missed), filter_params(missed, _same, cap=cap)))
        return total["n"], lost["n"]

    def batches(self, f: CallFilter, size: int) -> AsyncIterator[list[CallRecord]]:
        return page_batches(self.page, f, size)

    async def prune(self, before: datetime, batch: int) -> int:
        async with self._turn:
            return await self._prune(before, batch)

    async def _prune(self, before: datetime, batch: int) -> int:
        conn = await self._connection()
        try:
            if self._prune_tables is None:
                cur = await conn.execute("SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NOT NULL",
                                         (list(PRUNE_WITH_CALL),))
                self._prune_tables = [r[0] for r in await cur.fetchall()]
            async with conn.transaction():
                *_, last = [await conn.execute(pg_sql(sql), {"before": before, "batch": batch})
                            for sql in prune_sql(self._prune_tables)]
                return last.rowcount
        except psycopg.Error as exc:
            raise await self._fail(exc) from exc


class _Moved(Exception):
    def __init__(self, position: Position | None):
        self.position = position
