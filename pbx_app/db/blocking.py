"""A blocking connection per thread, for callers that are plain scripts (the CLI) or run in worker
threads (the page's accounts): SQLite with WAL, or PostgreSQL through psycopg. Statements use
:name parameters on both; rows come back as dicts. Its tables are created or migrated on the
first connection (schema_versions.py)."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

import psycopg
from psycopg.rows import dict_row

from ..private_files import private_sqlite
from . import POSTGRES, scheme
from .errors import StoreError
from .postgres_schema import ensure_postgres
from .schema_versions import Component, ensure_sqlite
from .sqlite_thread import sqlite_path

_NAMED = re.compile(r":([a-z_]+)")


class BlockingDatabase:
    """``with db.transaction() as run: run(sql, params)``, or ``db.rows(sql, params)``; every
    failure is ``error`` (a subclass names its own) with the database named."""

    error: type[StoreError] = StoreError

    def __init__(self, url: str, components: Sequence[Component]):
        self.url = url
        self._components = components
        try:
            self.postgres = scheme(url) == POSTGRES
            self.where = "PostgreSQL" if self.postgres else sqlite_path(url)
        except ValueError as exc:
            raise self.error(str(exc)) from None
        self._local = threading.local()
        self._ready = False

    # ---- connections -------------------------------------------------------------------------

    def _connect(self) -> Any:
        if self.postgres:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5, row_factory=dict_row)
        else:
            if self.where != ":memory:":
                Path(self.where).parent.mkdir(parents=True, exist_ok=True)
                private_sqlite(self.where)  # password hashes and session keys: the service user's only
            conn = sqlite3.connect(self.where, isolation_level=None, timeout=15)
            conn.row_factory = lambda cursor, row: {c[0]: v for c, v in zip(cursor.description, row)}
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=15000")
        if not self._ready:
            self._create(conn)
            self._ready = True
        return conn

    def _create(self, conn: Any) -> None:
        try:
            if self.postgres:
                ensure_postgres(self.url, self._components)
            else:
                ensure_sqlite(conn, self._components, self.where, read_time=lambda value: value)
        except StoreError as exc:
            raise self.error(str(exc)) from exc

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or (self.postgres and conn.closed):
            conn = self._local.conn = self._connect()
        return conn

    def _drop(self) -> None:
        conn, self._local.conn = getattr(self._local, "conn", None), None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    # ---- statements --------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator:
        """One transaction (a write lock at once on SQLite: BEGIN IMMEDIATE), and a ``run`` that
        gives the rows of one statement. A broken connection is dropped; the next call opens one."""
        try:
            conn = self._conn()
            if self.postgres:
                with conn.transaction():
                    yield lambda sql, params=None: self._pg(conn, sql, params)
            else:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield lambda sql, params=None: conn.execute(sql, params or {}).fetchall()
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        except (sqlite3.Error, psycopg.Error) as exc:
            self._drop()
            raise self.error(f"{self.where}: {exc}") from exc

    def rows(self, sql: str, params: dict | None = None) -> list[dict]:
        """A read outside any write transaction (no lock taken)."""
        try:
            conn = self._conn()
            if self.postgres:
                return self._pg(conn, sql, params)
            return conn.execute(sql, params or {}).fetchall()
        except (sqlite3.Error, psycopg.Error) as exc:
            self._drop()
            raise self.error(f"{self.where}: {exc}") from exc

    @staticmethod
    def _pg(conn: Any, sql: str, params: dict | None) -> list[dict]:
        cursor = conn.execute(_NAMED.sub(r"%(\1)s", sql), params or {})  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []

    def close(self) -> None:
        self._drop()
