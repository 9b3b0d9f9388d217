"""Issue 25 (2, 3, 4): the history at scale — the database filters, counts and pages; old calls
go in batches without holding writers; schema versions migrate a database made by the release
of 2026-12-07 (SQLite and PostgreSQL) and refuse a newer one; the SQLite journal is backed up
while written; the audit log rotates."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from pbx_app.callback.postgres_requests import PostgresCallbacks
from pbx_app.callback.sqlite_requests import SqliteCallbacks
from pbx_app.cli import main
from pbx_app.history.database import open_store, schema_problem
from pbx_app.history.events import CallEnded, CallStarted, LegEnded, LegStarted
from pbx_app.history.retention import remove_old
from pbx_app.history.rows import history_row
from pbx_app.db.schema_versions import SchemaTooNew
from pbx_app.history.spool import Position
from pbx_app.history.store import CallFilter
from pbx_app.notices.database import open_database
from pbx_app.notices.outbox import Outbox
from pbx_app.web.audit import AuditLog

RELEASE = Path(__file__).parents[1] / "data" / "release_2026_12_07"  # made by make.py there, at commit c2c0cd1
DAY = (datetime(2026, 12, 1, tzinfo=timezone.utc), datetime(2026, 12, 2, tzinfo=timezone.utc))
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def missed_call(call_id: str, when: datetime, ext: str = "101", voicemail: bool = False) -> list:
    events = [CallStarted(call_id, when, "79001112233", ext, "ch-" + call_id),
              LegStarted(call_id, 1, when, "employee", (ext,)),
              LegEnded(call_id, 1, when + timedelta(seconds=15), "no_answer")]
    if voicemail:
        events += [LegStarted(call_id, 2, when + timedelta(seconds=15), "voicemail", (ext,)),
                   LegEnded(call_id, 2, when + timedelta(seconds=30), "message_left")]
    return events + [CallEnded(call_id, when + timedelta(seconds=31), "voicemail" if voicemail else "dropped", "")]


def answered_call(call_id: str, when: datetime, ext: str = "102") -> list:
    return [CallStarted(call_id, when, "79004445566", ext, "ch-" + call_id),
            LegStarted(call_id, 1, when, "employee", (ext,)),
            LegEnded(call_id, 1, when + timedelta(seconds=40), "answered", answered_by=ext,
                     answered_at=when + timedelta(seconds=5)),
            CallEnded(call_id, when + timedelta(seconds=40), "answered", f"answered by {ext}")]


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request, tmp_path) -> str:
    """A database as the release of 2026-12-07 left it: two calls, a callback request, a notice."""
    if request.param == "sqlite":
        shutil.copy(RELEASE / "journal.sqlite", tmp_path / "journal.db")
        return f"sqlite:///{tmp_path}/journal.db"
    server = request.getfixturevalue("postgres_server")
    url = server.new_database("release")
    subprocess.run([str(server.bindir / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-f", str(RELEASE / "journal.postgres.sql"),
                    url], check=True, capture_output=True, text=True)
    return url


def versions(url: str) -> dict[str, int]:
    sql = "SELECT component, version FROM schema_versions"
    if url.startswith("sqlite"):
        return dict(sqlite3.connect(url.split(":", 1)[1][3:]).execute(sql).fetchall())
    with psycopg.connect(url) as db:
        return dict(db.execute(sql).fetchall())


def set_version(url: str, component: str, version: int) -> None:
    sql = "UPDATE schema_versions SET version = %d WHERE component = '%s'" % (version, component)
    if url.startswith("sqlite"):
        db = sqlite3.connect(url.split(":", 1)[1][3:])
        db.execute(sql)
        db.commit()
        db.close()
    else:
        with psycopg.connect(url) as db:
            db.execute(sql)


async def test_a_database_of_the_last_release_is_migrated_and_keeps_everything(old_database):
    url = old_database
    store = open_store(url)
    callbacks = SqliteCallbacks(url) if url.startswith("sqlite") else PostgresCallbacks(url)
    outbox = Outbox(open_database(url))
    try:
        # The page's questions, answered by the database from the migrated summaries.
        everyone = CallFilter(*DAY)
        assert [c.call_id for c in await store.page(everyone, 50)] == ["old-2", "old-1"]
        assert await store.count(everyone, 100) == (2, 1)
        [voicemail] = await store.page(CallFilter(*DAY, voicemail=True), 50)
        assert voicemail.call_id == "old-1" and history_row(voicemail).label == "Voicemail"
        assert [c.call_id for c in await store.page(CallFilter(*DAY, involving="102"), 50)] == ["old-2"]
        assert [c.call_id for c in await store.page(CallFilter(*DAY, missed=True), 50)] == ["old-1"]
        # The spool's position, the callback request and the notice are still there.
        assert await store.position("spool-a") == Position(3, 1234)
        request = await callbacks.get("old-3")
        assert request is not None and request.employee == "103" and request.state == "waiting"
        assert [(n["call_id"], n["recipient"]) for n in await outbox.journal()] == [("old-1", "boss@example.com")]
        # A new call after the upgrade lands with its summary.
        await store.ship("spool-a", Position(3, 1234), missed_call("new-1", DAY[0] + timedelta(hours=3), "102"),
                         Position(3, 2000))
        assert [c.call_id for c in await store.page(CallFilter(*DAY, involving="102", missed=True), 50)] == ["new-1"]
    finally:
        await store.close()
        await callbacks.close()
        await outbox.db.close()
    assert versions(url) == {"journal": 2, "callbacks": 1, "notices": 1}


async def test_a_database_of_a_newer_release_is_refused_with_a_clear_message(old_database):
    url = old_database
    store = open_store(url)
    await store.position("spool-a")  # migrated to this release's versions
    await store.close()
    set_version(url, "journal", 7)
    store = open_store(url)
    with pytest.raises(SchemaTooNew, match="journal tables are at schema version 7, made by a newer pbx_app; "
                                           "this release knows up to version 2"):
        await store.page(CallFilter(*DAY), 50)
    await store.close()
    problem = await schema_problem(url)
    assert problem is not None and "newer pbx_app" in problem
    assert versions(url)["journal"] == 7, "a refused database is left as it was"


async def test_a_new_database_starts_at_the_latest_versions(tmp_path):
    url = f"sqlite:///{tmp_path}/j.db"
    db = open_database(url)
    await Outbox(db).journal()
    await db.close()
    assert versions(url) == {"journal": 2, "notices": 1}
    assert await schema_problem(url) is None
    (tmp_path / "a-file").write_text("")
    assert await schema_problem(f"sqlite:///{tmp_path}/a-file/j.db") is None, "unreachable: no reason not to start"


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request, tmp_path):
    url = f"sqlite:///{tmp_path}/j.db" if request.param == "sqlite" else \
        request.getfixturevalue("postgres_server").new_database("scale")
    s = open_store(url)
    yield s
    await s.close()


async def test_filters_counts_and_batches_come_from_the_database(store):
    t = DAY[0] + timedelta(hours=9)
    events = []
    for n in range(30):
        when = t + timedelta(minutes=n)
        events += (missed_call(f"m{n:02d}", when, "101", voicemail=n % 3 == 0) if n % 2 else answered_call(f"a{n:02d}", when))
    await store.ship("s", None, events, Position(1, 1))
    everyone = CallFilter(*DAY)
    assert await store.count(everyone, 1000) == (30, 15)
    assert await store.count(everyone, 10) == (10, 10), "counts stop at the cap"
    newest = await store.page(everyone, 5)
    assert [c.call_id for c in newest] == ["m29", "a28", "m27", "a26", "m25"]
    assert [c.call_id for c in await store.page(everyone, 5, offset=5)] == ["a24", "m23", "a22", "m21", "a20"]
    assert [c.call_id for c in await store.page(CallFilter(*DAY, voicemail=True), 50)] == ["m27", "m21", "m15", "m09", "m03"]
    assert {history_row(c).employee for c in await store.page(CallFilter(*DAY, involving="102"), 50)} == {"102"}
    batches = [[c.call_id for c in b] async for b in store.batches(CallFilter(*DAY, newest_first=False), 7)]
    assert [len(b) for b in batches] == [7, 7, 7, 7, 2]
    assert batches[0][0] == "a00" and batches[-1][-1] == "m29"


async def test_old_calls_go_in_batches_with_their_legs_notices_and_callbacks_while_writers_write(tmp_path):
    url = f"sqlite:///{tmp_path}/j.db"
    store = open_store(url)
    callbacks = SqliteCallbacks(url)
    outbox_db = open_database(url)
    old = NOW - timedelta(days=100)
    events = []
    for n in range(600):
        events += missed_call(f"old{n:03d}", old + timedelta(seconds=n))
    await store.ship("s", None, events, Position(1, 1))
    await store.ship("s", Position(1, 1), answered_call("recent", NOW - timedelta(days=2)), Position(1, 2))
    await outbox_db.run([("INSERT INTO notices (call_id, kind, recipient, language, facts, state, created_at, next_at) "
                          "VALUES ('old001', 'missed', 'a@example.com', 'en', '{}', 'sent', :t, :t)", {"t": old.isoformat()})])
    from pbx_app.callback.requests import CallbackRequest
    await callbacks.add(CallbackRequest("old002", "101", "PJSIP/101", "79001112233", "PJSIP/{number}", old, old, old, 1, 60, 1))

    # A shipper writes while the cleanup runs: its batch goes in between two of the cleanup's.
    cleanup = asyncio.create_task(remove_old(store, 90, now=NOW, batch=50, pause=0.01))
    await asyncio.sleep(0)
    shipped = await store.ship("s", Position(1, 2), answered_call("during", NOW - timedelta(hours=1)), Position(1, 3))
    assert shipped == Position(1, 3) and not cleanup.done(), "the write did not wait for the whole cleanup"
    assert await cleanup == 600

    everything = CallFilter(NOW - timedelta(days=365), NOW + timedelta(days=1), newest_first=False)
    assert [c.call_id for c in await store.page(everything, 50)] == ["recent", "during"]
    db = sqlite3.connect(tmp_path / "j.db")
    assert db.execute("SELECT count(*) FROM legs WHERE call_id LIKE 'old%'").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM notices").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM callback_requests").fetchone() == (0,)
    for s in (store, callbacks, outbox_db):
        await s.close()


async def test_postgres_retention_removes_the_same(postgres_server):
    store = open_store(postgres_server.new_database("keep"))
    old = NOW - timedelta(days=40)
    await store.ship("s", None, missed_call("o1", old) + missed_call("o2", old) + answered_call("r", NOW), Position(1, 1))
    assert await remove_old(store, 30, now=NOW, batch=1, pause=0) == 2
    assert [c.call_id for c in await store.page(CallFilter(old - timedelta(days=1), NOW + timedelta(days=1)), 9)] == ["r"]
    await store.close()


async def test_the_backup_is_a_whole_journal_taken_while_a_shipper_writes(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/j.db"
    store = open_store(url)
    await store.ship("s", None, answered_call("c0", NOW), Position(1, 0))

    async def keep_writing():
        for n in range(1, 40):
            await store.ship("s", Position(1, n - 1), answered_call(f"c{n}", NOW + timedelta(seconds=n)), Position(1, n))

    writer = asyncio.create_task(keep_writing())
    code = await asyncio.to_thread(main, ["history", "backup", str(tmp_path / "copy.db"), "--database", url])
    await writer
    await store.close()
    assert code == 0 and "copied to" in capsys.readouterr().out
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    [(calls,)] = copy.execute("SELECT count(*) FROM calls").fetchall()
    [(shipped_to,)] = copy.execute("SELECT byte_offset FROM journal_spools").fetchall()
    assert calls == shipped_to + 1, "the copy is one moment: every call up to the position it records"
    assert main(["history", "backup", str(tmp_path / "copy.db"), "--database", url]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["history", "backup", str(tmp_path / "c.db"), "--database", "postgresql://x@127.0.0.1:1/db"]) == 1
    assert "pg_dump" in capsys.readouterr().err


def test_the_audit_log_rotates_and_keeps_a_bounded_number_of_files(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=2000, keep=3)
    for n in range(100):
        log.record("setting.saved", "boss", employee=str(n), detail="x" * 100)
    files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("audit"))
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2", "audit.jsonl.3"]
    assert all((tmp_path / f).stat().st_size <= 2000 for f in files)
    kept = [e["employee"] for e in log.entries()]
    assert kept == [str(n) for n in range(100 - len(kept), 100)], "the newest entries, in order, none lost in between"
    assert 20 < len(kept) < 100


async def test_a_reader_that_goes_away_mid_read_leaves_the_connection_usable(postgres_server):
    """A download cancelled in the middle of a read (PostgreSQL: one shared connection)."""
    store = open_store(postgres_server.new_database("cancel"))
    await store.ship("s", None, answered_call("a", NOW) + missed_call("m", NOW + timedelta(minutes=1)), Position(1, 1))
    whole = CallFilter(NOW - timedelta(days=1), NOW + timedelta(days=1))
    for round_ in range(20):  # readers at once, some gone at different moments of their reads
        readers = [asyncio.create_task(store.page(whole, 10)) for _ in range(6)]
        for _ in range(round_ % 5):
            await asyncio.sleep(0)
        for task in readers[::2]:
            task.cancel()
        done = await asyncio.gather(*readers, return_exceptions=True)
        assert all(isinstance(r, (list, asyncio.CancelledError)) for r in done), done
    assert [c.call_id for c in await store.page(whole, 10)] == ["m", "a"]
    assert await store.count(whole, 100) == (2, 1)
    await store.close()
