"""The outbox's connection to the journal's database: statements run in one transaction, their
rows returned as dicts. SQLite on a thread of its own (the event loop never waits on the disk),
PostgreSQL through psycopg's asyncio connection; either one reconnects after a failure."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Protocol, Sequence

import psycopg
from psycopg.rows import dict_row

from .. import db
from ..db.codec import iso, read_time
from ..db.postgres import PostgresConnection
from ..db.postgres_schema import pg_sql
from ..db.sqlite_thread import SqliteOnThread
from ..history.journal_schema import JOURNAL
from . import outbox_sql

Step = tuple[str, dict[str, Any]]


class Database(Protocol):
    url: str

    def time(self, moment: datetime) -> Any: ...

    def read_time(self, value: Any) -> datetime | None: ...

    async def run(self, steps: Sequence[Step], write: bool = True) -> list[list[dict]]:
        """``write`` False: only reads, which in SQLite take no write lock (the engines' shippers never wait on a look)."""
        ...

    async def close(self) -> None: ...


def open_database(url: str) -> Database:
    return db.open(url, SqliteDatabase, PostgresDatabase)


class SqliteDatabase(SqliteOnThread):
    def __init__(self, url: str):
        # The journal's tables too: a notifier started before any engine finds them there.
        super().__init__(url, (JOURNAL, outbox_sql.NOTICES), "notices-sqlite")

    def time(self, moment: datetime) -> str:
        return iso(moment)

    def read_time(self, value: str | None) -> datetime | None:
        return read_time(value)

    async def run(self, steps: Sequence[Step], write: bool = True) -> list[list[dict]]:
        return await self._run(self._steps, list(steps), write)

    def _steps(self, steps: list[Step], write: bool) -> list[list[dict]]:
        db = self._conn()
        # A write takes the lock first: a second sender waits, then sees our lease. A read is one snapshot.
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            out = [[dict(r) for r in db.execute(sql.replace("{lock}", ""), params).fetchall()] for sql, params in steps]
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return out


class PostgresDatabase(PostgresConnection):
    def __init__(self, url: str):
        # The journal's tables and lock too: engines and notifiers starting at once never race on CREATE.
        super().__init__(url, (JOURNAL, outbox_sql.NOTICES), row_factory=dict_row)

    def time(self, moment: datetime) -> datetime:
        return moment

    def read_time(self, value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(timezone.utc)

    async def run(self, steps: Sequence[Step], write: bool = True) -> list[list[dict]]:
        try:
            conn = await self._connection()
            out = []
            async with conn.transaction():
                if not write:  # the reads see one snapshot: a call's legs as of its row
                    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                for sql, params in steps:
                    cur = await conn.execute(pg_sql(sql.replace("{lock}", "FOR UPDATE SKIP LOCKED")), params)
                    out.append(await cur.fetchall() if cur.description else [])
            return out
        except psycopg.Error as exc:
            raise await self._fail(exc) from exc
