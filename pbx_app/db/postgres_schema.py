"""Schema versions (schema_versions.py) in PostgreSQL: a short synchronous psycopg connection
of its own, run on a worker thread, one transaction under an advisory lock, so engines,
notifiers and the page starting at once never race on CREATE or a migration."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Sequence

import psycopg
from psycopg.rows import dict_row

from .errors import StoreError
from .schema_versions import SCHEMA_LOCK, Component, ensure


def pg_sql(sql: str) -> str:
    """:name placeholders → psycopg's %(name)s."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql)


class PostgresDb:
    time_type = "timestamptz"

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def execute(self, sql: str, params: dict | None = None) -> None:
        self.conn.execute(pg_sql(sql) if params else sql, params or None)  # type: ignore[arg-type]

    def fetch(self, sql: str, params: dict | None = None) -> list[dict]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(pg_sql(sql) if params else sql, params or None)  # type: ignore[arg-type]
            return cur.fetchall()

    def executemany(self, sql: str, rows: Sequence[dict]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(pg_sql(sql), rows)  # type: ignore[arg-type]

    def has_table(self, name: str) -> bool:
        return self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]

    def read_time(self, value: Any) -> datetime | None:
        return None if value is None else value.astimezone(timezone.utc)


def ensure_postgres(url: str, components: Sequence[Component], where: str = "PostgreSQL") -> dict[str, int]:
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:  # one transaction, committed on leaving
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            return ensure(PostgresDb(conn), components, where)
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL: {exc}") from exc
