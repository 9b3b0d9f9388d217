"""The accounts' tables (users, sessions, one-time links) in the database the call journal uses:
SQLite by default, PostgreSQL where PBX_DATABASE_URL names one. Blocking on purpose (the CLI is
a plain script; the page calls it from worker threads), one connection per thread (db/blocking.py).

Every change is one short transaction that touches only the columns it changes, so a CLI
command and the page writing at the same moment never undo each other (the users file, read
whole and written whole, did). The tables are a component of the database's schema versions
(pbx_app/db/schema_versions.py), beside the journal's, so a later release migrates them."""

from __future__ import annotations

import secrets

from ..db.blocking import BlockingDatabase
from ..db.errors import StoreError
from ..db.schema_versions import Component

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


class DatabaseError(StoreError):
    """The accounts' database cannot be reached or refused a statement (names the database)."""


class AccountsDatabase(BlockingDatabase):
    """``with db.transaction() as run: run(sql, params)`` — SQL with :name parameters, rows as dicts."""

    error = DatabaseError

    def __init__(self, url: str):
        super().__init__(url, (ACCOUNTS,))

    def shared_secret(self, key: str) -> bytes:
        """A random key every process using this database shares (made by the first to ask)."""
        # Insert-if-absent, then read: two processes starting together on a new database both
        # end up with the one key that won (a read-then-insert let each keep its own).
        with self.transaction() as run:
            run("INSERT INTO accounts_meta (key, value) VALUES (:key, :value) ON CONFLICT (key) DO NOTHING",
                {"key": key, "value": secrets.token_hex(32)})
        rows = self.rows("SELECT value FROM accounts_meta WHERE key = :key", {"key": key})
        return bytes.fromhex(rows[0]["value"])
