"""Issue 32: what holds clients' numbers and people's accounts is readable by the service user
only — 0600 files, a 0700 spool — whatever the umask, and a journal an older version left
world-readable is tightened when it is opened."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pbx_app.callback.sqlite_requests import SqliteCallbacks
from pbx_app.history.events import CallStarted
from pbx_app.history.journal import SpooledJournal
from pbx_app.history.sqlite_store import SqliteStore
from pbx_app.notices.database import open_database
from pbx_app.users.store import UserStore


@pytest.fixture
def open_umask():
    old = os.umask(0)  # the worst a service manager could hand us
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): mode(p) for p in sorted(folder.rglob("*"))}


async def test_every_store_is_created_for_the_service_user_only(tmp_path, open_umask):
    journal = await SpooledJournal(tmp_path / "spool", SqliteStore(f"sqlite:///{tmp_path}/journal.db"),
                                   idle_poll=0.05, ship_interval=0.01).start()
    await journal.record(CallStarted("1.1", datetime.now(timezone.utc), "7900", "101", "1.1", ()))
    assert await journal.wait_shipped(10)
    await journal.close()
    callbacks = SqliteCallbacks(f"sqlite:///{tmp_path}/callbacks.db")
    await callbacks.open(datetime.now(timezone.utc))
    await callbacks.close()
    notices = open_database(f"sqlite:///{tmp_path}/notices.db")
    await notices.run([])
    await notices.close()
    UserStore(f"sqlite:///{tmp_path}/var/accounts.db").add("admin", "admin", None, "correct horse battery")

    found = modes(tmp_path)
    assert found["spool"] == 0o700
    assert {m for name, m in found.items() if name != "spool" and name != "var"} == {0o600}, found
    assert {"journal.db", "callbacks.db", "notices.db", "var/accounts.db", "spool/lock", "spool/spool.id"} <= set(found)
    assert any(name.startswith("spool/0") for name in found), "a spool segment was checked too"


async def test_a_journal_left_world_readable_is_tightened_when_opened(tmp_path):
    db, wal = tmp_path / "journal.db", tmp_path / "journal.db-wal"
    for path in (db, wal):
        path.touch()
        os.chmod(path, 0o644)
    (tmp_path / "spool").mkdir(mode=0o755)
    os.chmod(tmp_path / "spool", 0o755)
    journal = await SpooledJournal(tmp_path / "spool", SqliteStore(f"sqlite:///{db}"), idle_poll=0.05).start()
    await journal.record(CallStarted("1.1", datetime.now(timezone.utc), "7900", "101", "1.1", ()))
    assert await journal.wait_shipped(10)
    await journal.close()
    assert (mode(db), mode(tmp_path / "spool")) == (0o600, 0o700)
    assert not wal.exists() or mode(wal) == 0o600


def test_making_a_database_private_keeps_the_locks_sqlite_holds_on_it(tmp_path):
    """Closing any descriptor of a file drops this process's POSIX locks on it. Without its lock
    on the database file, another process that closes its connection believes it is the last,
    checkpoints and removes the WAL: this process's next commits go to a removed file, and
    nobody else ever sees them (engines read stale history until they stopped)."""
    import sqlite3
    import subprocess
    import sys

    from pbx_app.private_files import private_sqlite

    def count_from_another_process() -> str:
        code = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute('SELECT count(*) FROM t').fetchone()[0]); c.close()"
        return subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=30).stdout.strip()

    path = str(tmp_path / "journal.db")
    private_sqlite(path)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x)")
    writer.execute("INSERT INTO t VALUES (1)")
    private_sqlite(path)  # a second store of this process opening the same file
    assert count_from_another_process() == "1"
    writer.execute("INSERT INTO t VALUES (2)")
    assert count_from_another_process() == "2", "a commit of this process was lost to the others"
