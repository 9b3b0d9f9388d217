"""One SQLite connection owned by one worker thread: the event loop never waits on the disk, and
sqlite3's objects never cross threads. The journal, the callback requests and the notices'
outbox share the journal's database file, each through one of these."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

from ..private_files import private_sqlite
from .codec import read_time
from .errors import StoreError
from .schema_versions import Component, ensure_sqlite


def sqlite_path(url: str) -> str:
    """sqlite:////abs/path.db → /abs/path.db; sqlite:///rel.db → rel.db (SQLAlchemy's form)."""
    rest = url.split(":", 1)[1]
    if not rest.startswith("///"):
        raise ValueError(f"{url!r}: a SQLite URL is sqlite:////absolute/path.db or sqlite:///relative.db")
    return rest[3:]


def _wal(db: sqlite3.Connection, tries: int = 50) -> None:
    """WAL mode, waiting for a process that is creating the tables: on a new file that holds the
    write lock, and SQLite answers "locked" at once here (its busy handler would deadlock) instead
    of waiting, as it does for everything else."""
    for attempt in range(tries):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.1)


class SqliteOnThread:
    def __init__(self, url: str, components: Sequence[Component], thread_name: str):
        self.url = url
        self.path = sqlite_path(url)
        self._components = components  # created or migrated on the first connection
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the connection's thread; a database error drops the connection (the
        next call opens a fresh one) and surfaces as StoreError naming the file."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
        except (sqlite3.Error, OSError) as exc:
            self._drop()
            raise StoreError(f"{self.path}: {exc}") from exc

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                private_sqlite(self.path)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            db.row_factory = sqlite3.Row
            _wal(db)
            # FULL: a shipped segment of the spool is deleted once the commit returns.
            db.execute("PRAGMA synchronous=FULL")
            try:
                ensure_sqlite(db, self._components, self.path, read_time)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _drop(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()
            except sqlite3.Error:
                pass

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._drop)
        self._thread.shutdown(wait=True)
