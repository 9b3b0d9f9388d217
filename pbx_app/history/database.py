"""Which store a database URL names. Its own module, so that the shared SQL (store.py) never
imports the backends that import it."""

from __future__ import annotations

from .postgres_store import PostgresStore
from .sqlite_store import SqliteStore
from .store import Store


def open_store(url: str) -> Store:
    """The store a database URL names. Connecting happens on first use (and again after an
    outage), so an unreachable database never stops the app from taking calls."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        return SqliteStore(url)
    if scheme in ("postgresql", "postgres"):
        return PostgresStore(url)
    raise ValueError(f"PBX_DATABASE_URL={url!r}: use sqlite:////path/journal.db or postgresql://user@host:port/db")
