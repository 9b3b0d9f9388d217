"""`pbx-app history backup FILE`: a consistent copy of the SQLite journal (calls, legs, callback
requests, notices: the whole database file) while engines keep writing. SQLite's online backup
copies the database as of one read transaction; in WAL mode a reader never blocks a writer,
so no call waits on it. The copy is written next to FILE and renamed into place at the end: a
copy cut short leaves no half-made FILE. For PostgreSQL, pg_dump does the same."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from ..db.sqlite_thread import sqlite_path


class BackupError(RuntimeError):
    """Says what could not be copied and why."""


def backup(database_url: str, target: Path) -> float:
    """Copies the journal to ``target`` (which must not exist); the seconds it took."""
    scheme = database_url.split(":", 1)[0].lower()
    if scheme != "sqlite":
        raise BackupError(f"{database_url.split('@')[-1]}: back up a PostgreSQL journal with pg_dump "
                          "(for example pg_dump -Fc -f journal.dump 'postgresql://…')")
    source = Path(sqlite_path(database_url))
    if not source.is_file():
        raise BackupError(f"{source}: no such journal")
    if target.exists():
        raise BackupError(f"{target} exists: name a new file (a backup never overwrites one)")
    partial = target.with_name(f".{target.name}.partial")
    began = time.monotonic()
    try:
        src = sqlite3.connect(source, timeout=30)
        try:
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst)  # all pages in one step: one snapshot, however busy the writers
                dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
            finally:
                dst.close()
        finally:
            src.close()
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.rename(partial, target)
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"cannot back up {source} to {target}: {exc}") from exc
    return time.monotonic() - began
