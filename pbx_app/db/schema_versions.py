"""Schema versions of the tables that share the journal's database, one row per component in
`schema_versions` (journal, callbacks, notices; more components — users, sessions — join by
adding a Component). The first process to open the database brings every component it uses to
its latest version, one step at a time, in one transaction under a lock; a database whose
component is newer than this release knows is refused (an older release must not write into
tables it does not understand).

A database made before versions existed (the release of 2026-12-07) has the tables and no
`schema_versions`: a component whose first table is there counts as version 1.

The steps are synchronous (SQLite on its own thread, PostgreSQL through a short psycopg
connection of its own), so one migration serves both backends."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Protocol, Sequence

from .errors import StoreError

SCHEMA_LOCK = 0x7062785F736368  # "pbx_sch": one process at a time creates or migrates tables
VERSIONS_TABLE = """CREATE TABLE IF NOT EXISTS schema_versions (
    component text PRIMARY KEY,     -- journal, callbacks, notices, ...
    version integer NOT NULL,
    migrated_at text NOT NULL
)"""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer release; this one must not touch it."""


class Db(Protocol):
    """What a migration step may do, the same for both backends (``:name`` placeholders)."""

    time_type: str  # "text" (SQLite) or "timestamptz" (PostgreSQL)

    def execute(self, sql: str, params: dict | None = None) -> None: ...

    def fetch(self, sql: str, params: dict | None = None) -> list[dict]: ...

    def executemany(self, sql: str, rows: Sequence[dict]) -> None: ...

    def has_table(self, name: str) -> bool: ...

    def read_time(self, value: Any) -> datetime | None: ...


Step = Callable[[Db], None]


@dataclass(frozen=True)
class Component:
    name: str
    first_table: str  # there without a version row: the database predates versions (version 1)
    create: Callable[[str], str]  # the latest tables, given the time type; CREATE ... IF NOT EXISTS
    # migrations[n] takes a database from version n - 1 to n; the latest version is the highest key.
    migrations: dict[int, Sequence[Step]] = field(default_factory=dict)

    @property
    def version(self) -> int:
        return max(self.migrations, default=1)


def statements(script: str) -> list[str]:
    """A script of CREATE statements, one statement each (its comments dropped first: they may hold a ';')."""
    bare = "\n".join(line.split("--", 1)[0] for line in script.splitlines())
    return [s.strip() for s in bare.split(";") if s.strip()]


def sql_step(sql: str) -> Step:
    return lambda db: db.execute(sql.replace("{time}", db.time_type))


def ensure(db: Db, components: Sequence[Component], where: str) -> dict[str, int]:
    """Brings each component to its latest version; the caller holds the transaction and the
    lock. Returns the versions found before. ``where`` names the database in the messages."""
    db.execute(VERSIONS_TABLE)
    found: dict[str, int] = {}
    for component in components:
        rows = db.fetch("SELECT version FROM schema_versions WHERE component = :c", {"c": component.name})
        if rows:
            version = int(rows[0]["version"])
        else:
            version = 1 if db.has_table(component.first_table) else 0
        found[component.name] = version
        if version > component.version:
            raise SchemaTooNew(
                f"{where}: its {component.name} tables are at schema version {version}, made by a newer pbx_app; "
                f"this release knows up to version {component.version}. Run the newer release (or restore the "
                f"backup taken before the upgrade).")
        if version:  # an older database: each step from its version on, then anything new to create
            for step_to in range(version + 1, component.version + 1):
                for step in component.migrations[step_to]:
                    step(db)
        for statement in statements(component.create(db.time_type)):
            db.execute(statement)
        if not rows or version != component.version:
            db.execute("""INSERT INTO schema_versions (component, version, migrated_at) VALUES (:c, :v, :at)
                          ON CONFLICT (component) DO UPDATE SET version = excluded.version,
                              migrated_at = excluded.migrated_at""",
                       {"c": component.name, "v": component.version,
                        "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return found


class SqliteDb:
    time_type = "text"

    def __init__(self, conn: sqlite3.Connection, read_time: Callable[[Any], datetime | None]):
        self.conn = conn
        self.read_time = read_time  # type: ignore[assignment]

    def execute(self, sql: str, params: dict | None = None) -> None:
        self.conn.execute(sql, params or {})

    def fetch(self, sql: str, params: dict | None = None) -> list[dict]:
        return [dict(r) for r in self.conn.execute(sql, params or {})]

    def executemany(self, sql: str, rows: Sequence[dict]) -> None:
        self.conn.executemany(sql, rows)

    def has_table(self, name: str) -> bool:
        return self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def ensure_sqlite(conn: sqlite3.Connection, components: Sequence[Component], where: str,
                  read_time: Callable[[Any], datetime | None]) -> dict[str, int]:
    """In one write transaction: a second process waits on the lock, then finds the work done."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = ensure(SqliteDb(conn, read_time), components, where)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found
