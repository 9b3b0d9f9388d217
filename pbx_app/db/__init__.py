"""The databases under the app: the journal's file (SQLite, by default) or one PostgreSQL, named by
PBX_DATABASE_URL. The journal, the callback requests, the notices' outbox, the outbound limits
and the accounts each keep their tables there, through the pieces here: a SQLite connection on a
thread of its own (sqlite_thread.py), an asyncio PostgreSQL connection (postgres.py), a blocking
one per thread for the CLI and the page's workers (blocking.py), the tables' versions
(schema_versions.py), times as stored (codec.py), and ``open``: the backend a URL names."""

from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")
SQLITE, POSTGRES = "sqlite", "postgresql"


def scheme(url: str) -> str:
    """SQLITE or POSTGRES; ValueError naming the variable for anything else."""
    named = url.split(":", 1)[0].lower()
    if named == "sqlite":
        return SQLITE
    if named in ("postgresql", "postgres"):
        return POSTGRES
    raise ValueError(f"PBX_DATABASE_URL={url!r}: use sqlite:////path/journal.db or postgresql://user@host:port/db")


def open(url: str, sqlite: Callable[[str], T], postgres: Callable[[str], T]) -> T:  # noqa: A001 (db.open)
    """The backend the URL names, made from it. Nothing connects yet: each connects on first use
    (and again after an outage), so an unreachable database never stops the app taking calls."""
    return (sqlite if scheme(url) == SQLITE else postgres)(url)
