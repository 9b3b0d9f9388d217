"""The journal in PostgreSQL (PBX_DATABASE_URL=postgresql://…), through psycopg 3's asyncio
connection. One connection, opened on first use and again after it breaks; times are
timestamptz."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Sequence

import psycopg
from psycopg.rows import dict_row

from .postgres_connection import PostgresConnection
from .events import JournalEvent
from .records import CallRecord
from .spool import Position
from .store import (GET_POSITION, PUT_POSITION, SELECT_CALL, SELECT_CALL_LEGS, SELECT_CALLS, SELECT_LEGS,
                    SELECT_OPEN_CALLS, SELECT_OPEN_LEGS, UPSERT, event_params, records, schema)

SCHEMA = schema("timestamptz")
# The row a first shipper takes; a second one waits on it, then sees the first one's position.
CLAIM_POSITION = """
    INSERT INTO journal_spools (spool, segment_no, byte_offset) VALUES (:spool, -1, -1)
    ON CONFLICT (spool) DO NOTHING"""
# Two apps starting at once must not race on CREATE TABLE.
SCHEMA_LOCK = 0x7062785F6A726E  # "pbx_jrn"


def pg_sql(sql: str) -> str:
    """:name placeholders → psycopg's %(name)s."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql)


def _same(value):
    return value


def _time(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(timezone.utc)


class PostgresStore(PostgresConnection):
    def __init__(self, url: str):
        super().__init__(url, SCHEMA, SCHEMA_LOCK)

    async def position(self, spool: str) -> Position | None:
        conn = await self._connection()
        try:
            cur = await conn.execute(pg_sql(GET_POSITION), {"spool": spool})
            row = await cur.fetchone()
        except psycopg.Error as exc:
            raise await self._fail(exc) from exc
        return None if row is None else Position(row[0], row[1])

    async def ship(self, spool: str, expected: Position | None, events: Sequence[JournalEvent], end: Position) -> Position:
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
                await conn.execute(pg_sql(PUT_POSITION), {"spool": spool, "segment": end.segment, "offset": end.offset,
                                                          "now": datetime.now(timezone.utc)})
        except _Moved as moved:
            return moved.position  # type: ignore[return-value]
        except psycopg.Error as exc:
            raise await self._fail(exc) from exc
        return end

    async def calls(self, start: datetime, end: datetime, open_only: bool = False) -> list[CallRecord]:
        conn = await self._connection()
        bounds = {"start": start, "end": end}
        try:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                async with conn.cursor(row_factory=dict_row) as cur:
                    await cur.execute(pg_sql(SELECT_OPEN_CALLS if open_only else SELECT_CALLS), bounds)
                    call_rows = await cur.fetchall()
                    await cur.execute(pg_sql(SELECT_OPEN_LEGS if open_only else SELECT_LEGS), bounds)
                    leg_rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise await self._fail(exc) from exc
        return records(call_rows, leg_rows, _time)

    async def call(self, call_id: str) -> CallRecord | None:
        conn = await self._connection()
        try:
            async with conn.transaction():
                async with conn.cursor(row_factory=dict_row) as cur:
                    await cur.execute(pg_sql(SELECT_CALL), {"call_id": call_id})
                    call_rows = await cur.fetchall()
                    await cur.execute(pg_sql(SELECT_CALL_LEGS), {"call_id": call_id})
                    leg_rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise await self._fail(exc) from exc
        found = records(call_rows, leg_rows, _time)
        return found[0] if found else None



class _Moved(Exception):
    def __init__(self, position: Position | None):
        self.position = position
