"""The accounts' tables (users, sessions, one-time links) in the database the call journal uses:
SQLite by default, PostgreSQL where PBX_DATABASE_URL names one. Blocking on purpose (the CLI is
a plain script; the page calls it from worker threads), one connection per thread.

Every change is one short transaction that touches only the columns it changes, so a CLI
command and the page writing at the same moment never undo each other (the users file, read
whole and written whole, did). The tables are a component of the database's schema versions
(pbx_app/history/schema_versions.py), beside the journal's, so a later release migrates them."""

from __future__ import annotations

import contextlib
import re
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator

import psycopg
from psycopg.rows import dict_row

from ..history.postgres_schema import ensure_postgres
from ..history.schema_versions import Component, ensure_sqlite
from ..history.store import StoreError
from ..private_files import private_sqlite

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        extension TEXT,
        password_hash TEXT,
        display_name TEXT,
        language TEXT,
        email TEXT,
        source TEXT NOT NULL DEFAULT 'local',
        disabled INTEGER NOT NULL DEFAULT 0,
        stamp TEXT NOT NULL,
        changed_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS web_sessions (
        id_hash TEXT PRIMARY KEY,
        csrf TEXT NOT NULL,
        user_name TEXT NOT NULL,
        stamp TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        seen DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS web_sessions_user ON web_sessions (user_name)",
    """CREATE TABLE IF NOT EXISTS account_links (
        token_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL,
        kind TEXT NOT NULL,
        made_by TEXT NOT NULL,
        expires DOUBLE PRECISION NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS accounts_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]
ACCOUNTS = Component(name="accounts", first_table="users", create=lambda time_type: ";\n".join(SCHEMA))
_NAMED = re.compile(r":([a-z_]+)")


class DatabaseError(RuntimeError):
    """The accounts' database cannot be reached or refused a statement (names the database)."""


def sqlite_file(url: str) -> str:
    rest = url.split(":", 1)[1]
    if not rest.startswith("///"):
        raise DatabaseError(f"{url!r}: a SQLite URL is sqlite:////absolute/path.db or sqlite:///relative.db")
    return rest[3:]


class AccountsDatabase:
    """``with db.transaction() as run: run(sql, params)`` — SQL with :name parameters, rows as dicts."""

    def __init__(self, url: str):
        self.url = url
        scheme = url.split(":", 1)[0].lower()
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise DatabaseError(f"PBX_DATABASE_URL={url!r}: use sqlite:////path/journal.db or postgresql://user@host/db")
        self.postgres = scheme != "sqlite"
        self.where = "PostgreSQL" if self.postgres else sqlite_file(url)
        self._local = threading.local()
        self._ready = False

    # ---- connections -------------------------------------------------------------------------

    def _connect(self) -> Any:
        if self.postgres:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5, row_factory=dict_row)
        else:
            path = sqlite_file(self.url)
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                private_sqlite(path)  # password hashes and session keys: the service user's only
            conn = sqlite3.connect(path, isolation_level=None, timeout=15)
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
                ensure_postgres(self.url, (ACCOUNTS,))
            else:
                ensure_sqlite(conn, (ACCOUNTS,), self.where, read_time=lambda value: value)
        except StoreError as exc:
            raise DatabaseError(str(exc)) from exc

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
            raise DatabaseError(f"{self.where}: {exc}") from exc

    def rows(self, sql: str, params: dict | None = None) -> list[dict]:
        """A read outside any write transaction (no lock taken)."""
        try:
            conn = self._conn()
            if self.postgres:
                return self._pg(conn, sql, params)
            return conn.execute(sql, params or {}).fetchall()
        except (sqlite3.Error, psycopg.Error) as exc:
            self._drop()
            raise DatabaseError(f"{self.where}: {exc}") from exc

    @staticmethod
    def _pg(conn: Any, sql: str, params: dict | None) -> list[dict]:
        cursor = conn.execute(_NAMED.sub(r"%(\1)s", sql), params or {})  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []

    def shared_secret(self, key: str) -> bytes:
        """A random key every process using this database shares (made by the first to ask)."""
        # Insert-if-absent, then read: two processes starting together on a new database both
        # end up with the one key that won (a read-then-insert let each keep its own).
        with self.transaction() as run:
            run("INSERT INTO accounts_meta (key, value) VALUES (:key, :value) ON CONFLICT (key) DO NOTHING",
                {"key": key, "value": secrets.token_hex(32)})
        rows = self.rows("SELECT value FROM accounts_meta WHERE key = :key", {"key": key})
        return bytes.fromhex(rows[0]["value"])

    def close(self) -> None:
        self._drop()
