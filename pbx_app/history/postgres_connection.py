"""One PostgreSQL connection, opened on first use and again after it broke. Its first act creates
the tables it needs under an advisory lock: two processes starting at once must not race on
CREATE TABLE. The journal, the callback requests and the notices' outbox each keep one."""

from __future__ import annotations

from typing import Any

import psycopg

from .store import StoreError


class PostgresConnection:
    def __init__(self, url: str, schema: str, schema_lock: int, row_factory: Any = None):
        self.url = url
        self._schema = schema
        self._schema_lock = schema_lock
        self._row_factory = row_factory  # None: psycopg's tuples
        self._conn: psycopg.AsyncConnection | None = None

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            try:
                extra = {} if self._row_factory is None else {"row_factory": self._row_factory}
                conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=5, **extra)
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._schema_lock,))
                    await conn.execute(self._schema)  # type: ignore[arg-type]
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL: {exc}") from exc
            self._conn = conn
        return self._conn

    async def _fail(self, exc: psycopg.Error) -> StoreError:
        """The connection broke (or a statement failed): close it, the next call opens a fresh one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except psycopg.Error:
                pass
        return StoreError(f"PostgreSQL: {exc}")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
