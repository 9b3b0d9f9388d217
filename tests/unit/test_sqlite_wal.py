import sqlite3, threading
from pbx_app.db.sqlite_thread import _wal

def test_wal_mode_waits_for_another_process_creating_the_tables(tmp_path):
    """Two engines opening a new journal at once: the second's switch to WAL meets the first's
    write lock and SQLite answers "locked" at once; it waits for the lock instead of failing."""
    path = tmp_path / "journal.db"
    first = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    first.execute("CREATE TABLE t (x)")
    first.execute("BEGIN IMMEDIATE")
    first.execute("INSERT INTO t VALUES (1)")
    second = sqlite3.connect(path, isolation_level=None, timeout=10)
    threading.Timer(0.3, lambda: first.execute("COMMIT")).start()
    _wal(second)
    assert second.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
