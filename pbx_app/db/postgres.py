"""One PostgreSQL connection, opened on first use and again after it broke. Before the first,
the tables it needs are created or migrated (postgres_schema.py). The journal, the callback
requests and the notices' outbox each keep one."""

from __future__ import annotations

import asyncio
from typing import Any, Sequence

import psycopg

from .errors import StoreError
from .postgres_schema import ensure_postgres
from .schema_versions import Component


class PostgresConnection:
    def __init__(self, url: str, components: Sequence[Component], row_factory: Any = None):
        self.url = url
        self._components = components
        self._schema_ready = False  # created or migrated once per process; a broken link does not undo it
        self._row_factory = row_factory  # None: psycopg's tuples
        self._conn: psycopg.AsyncConnection | None = None
        # One transaction at a time on the connection: two readers of the page (or a reader and
        # the shipper) interleaving their BEGIN/COMMIT on it break both.
        self._turn = asyncio.Lock()

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            if not self._schema_ready:
                await asyncio.to_thread(ensure_postgres, self.url, self._components)
                self._schema_ready = True
            try:
                extra = {} if self._row_factory is None else {"row_factory": self._row_factory}
                conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=5, **extra)
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
        async with self._turn:  # after a read still under way (one a cancelled reader left running)
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
