"""Which store a database URL names. Its own module, so that the shared SQL (store.py) never
imports the backends that import it."""

from __future__ import annotations

from .. import db
from ..db.errors import StoreError
from ..db.schema_versions import SchemaTooNew
from .postgres_store import PostgresStore
from .sqlite_store import SqliteStore
from .store import Store


def open_store(url: str) -> Store:
    """The store a database URL names. Connecting happens on first use (and again after an
    outage), so an unreachable database never stops the app from taking calls."""
    return db.open(url, SqliteStore, PostgresStore)


async def schema_problem(url: str) -> str | None:
    """Why a process must not start on this database (its tables are newer than this release
    knows), or None. An unreachable database is no such reason: calls go on and the spool keeps
    their journal until it is back. Opening also migrates an older database now, not mid-call."""
    store = open_store(url)
    try:
        await store.position("")
    except SchemaTooNew as exc:
        return str(exc)
    except StoreError:
        return None
    finally:
        await store.close()
    return None
