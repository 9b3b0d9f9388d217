"""Calls the dialplan carried with no engine (issue 29): brought into history from their CDR rows,
as the manager expects, once, and never over a call an engine saw."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta, timezone

from pbx_app.db.errors import StoreError
from pbx_app.history.cdr import CdrLeg, SqliteCdr
from pbx_app.history.events import CallStarted, MemoryJournal
from pbx_app.history.reconcile import Reconciler
from pbx_app.history.records import fold
from pbx_app.history.rows import history_row
from pbx_app.history.unseen_calls import UnseenCalls, history_id, started_from

T0 = datetime(2026, 11, 29, 8, 40, tzinfo=timezone.utc)


class Store:
    """The journal's database as the reconciler reads it: what the journal holds so far."""

    def __init__(self, journal: MemoryJournal, down: bool = False):
        self.journal = journal
        self.down = down

    async def calls(self, start, end, open_only=False):
        return [c for c in fold(self.journal.events) if not open_only or c.result is None]

    async def call(self, call_id):
        if self.down:
            raise StoreError("database away")
        return next((c for c in fold(self.journal.events) if c.call_id == call_id), None)


class Cdr:
    """A CDR that returns its whole window at each look, as PostgreSQL's reader does."""

    def __init__(self, rows):
        self.rows = rows

    async def fallback_legs(self, since):
        return [r for r in self.rows if r.start >= since]

    async def legs(self, linkedid):
        return [r for r in self.rows if r.call_id == linkedid]


def row(call, n, role, who, disposition, at, answer=None, lastapp="Dial", dialled="101"):
    return CdrLeg(call, n, role, who, True, disposition, lastapp, f"PJSIP/{who}-0001", T0 + timedelta(seconds=at),
                  answer and T0 + timedelta(seconds=answer), T0 + timedelta(seconds=at + 5),
                  caller="79001234567", dst=who, channel="PJSIP/client-00000001", dialled=dialled, history="h1")


FORWARDED = [row("a-1.1", 1, "employee", "101", "NO ANSWER", 0),
             row("a-1.1", 2, "forward", "102", "ANSWERED", 3, answer=4)]
MISSED = [row("a-1.2", 1, "employee", "103", "NO ANSWER", 10, dialled="103")]
# 104 is off duty: no ring of their own, the dialplan went straight to their mailbox.
VOICEMAIL = [row("a-1.3", 1, "voicemail", "104", "ANSWERED", 20, answer=20, lastapp="VoiceMail", dialled="104")]


def reconciler_for(journal, cdr, now, clock, store=None):
    return Reconciler(store or Store(journal), journal, cdr, grace=5, clock=lambda: now[0],
                      unseen=UnseenCalls(cdr, store or Store(journal), "h1", settle=2, clock=lambda: clock[0]))


async def test_calls_no_engine_saw_reach_history_as_the_engines_would_have_written_them():
    journal = MemoryJournal()
    now, clock = [T0 + timedelta(minutes=1)], [100.0]
    reconciler = reconciler_for(journal, Cdr(FORWARDED + MISSED + VOICEMAIL), now, clock)
    await reconciler.reconcile(set())
    assert journal.events == [], "rows just seen may be half of a call: not yet"
    clock[0] += 2
    await reconciler.reconcile(set())
    rows = {c.call_id: history_row(c) for c in fold(journal.events)}
    forwarded, missed, voicemail = rows["a-1.1"], rows["a-1.2"], rows["a-1.3"]
    assert (forwarded.employee, forwarded.status, forwarded.forwarded_from) == ("102", "answered", "101")
    assert "forwarded to 102, answered by 102" in forwarded.what_happened
    assert (missed.employee, missed.status) == ("103", "missed")
    assert (voicemail.employee, voicemail.status) == ("104", "missed") and "voicemail" in voicemail.what_happened
    [call] = [c for c in fold(journal.events) if c.call_id == "a-1.1"]
    assert (call.caller, call.started_at, call.ended_at) == ("79001234567", T0, T0 + timedelta(seconds=8))
    assert call.channel_id == "a-1.1" and call.channel_name == "PJSIP/client-00000001"


async def test_each_call_is_written_once_and_a_restart_writes_nothing_twice():
    journal = MemoryJournal()
    cdr = Cdr(FORWARDED + MISSED)
    now, clock = [T0 + timedelta(minutes=1)], [100.0]
    reconciler = reconciler_for(journal, cdr, now, clock)
    await reconciler.reconcile(set())
    clock[0] += 2
    await reconciler.reconcile(set())
    written = len(journal.events)
    clock[0] += 10
    await reconciler.reconcile(set())
    assert len(journal.events) == written, "handed on once"
    restarted = reconciler_for(journal, cdr, now, clock)
    await restarted.reconcile(set())
    clock[0] += 2
    await restarted.reconcile(set())
    assert len(journal.events) == written, "the journal has them: a restart adds nothing"
    assert len(fold(journal.events)) == 2


async def test_a_call_an_engine_saw_is_left_to_the_engine_and_the_reconciler():
    journal = MemoryJournal()
    # The engine claimed it, then died; the dialplan carried the forward on (a :fallback row).
    await journal.record(CallStarted("a-1.1", T0, "79001234567", "101", "a-1.1", ("101's own plan",)))
    now, clock = [T0 + timedelta(minutes=1)], [100.0]
    unseen = UnseenCalls(Cdr(FORWARDED[1:]), Store(journal), "h1", settle=0, clock=lambda: clock[0])
    assert await unseen.due(now[0]) == []


async def test_a_database_that_does_not_answer_leaves_the_calls_for_the_next_look():
    journal = MemoryJournal()
    store = Store(journal, down=True)
    clock = [100.0]
    unseen = UnseenCalls(Cdr(MISSED), store, "h1", settle=0, clock=lambda: clock[0])
    assert await unseen.due(T0 + timedelta(minutes=1)) == []
    store.down = False
    assert [[r.leg for r in rows] for rows in await unseen.due(T0 + timedelta(minutes=1))] == [[1]]


async def test_calls_of_another_journal_are_left_to_its_own_engines():
    journal = MemoryJournal()
    unseen = UnseenCalls(Cdr(FORWARDED + MISSED), Store(journal), "h2", settle=0, clock=lambda: 100.0)
    assert await unseen.due(T0 + timedelta(minutes=1)) == []


def test_the_history_id_is_the_same_for_the_same_database_whatever_its_password():
    assert history_id("postgresql://pbx:one@db/pbx") == history_id("postgresql://pbx:two@db/pbx")
    assert history_id("sqlite:////tmp/a/journal.db") != history_id("sqlite:////tmp/b/journal.db")


def test_the_dialled_employee_comes_from_the_legs_even_when_their_own_ring_was_skipped():
    assert started_from(VOICEMAIL).extension == "104"
    plain = [CdrLeg("a-1.4", 1, "employee", "105", True, "NO ANSWER", "Dial", "", T0, None, T0, dst="105")]
    assert started_from(plain).extension == "105", "a number with no plan: the dialplan's plain ring"


def test_userfield_with_the_dialled_employee_parses():
    leg = CdrLeg.parse({"userfield": "a-1.5:2:forward:102:fallback:101:h1", "disposition": "ANSWERED", "src": "7900"})
    assert (leg.leg, leg.role, leg.who, leg.fallback, leg.dialled, leg.history, leg.caller) == (
        2, "forward", "102", True, "101", "h1", "7900")
    assert CdrLeg.parse({"userfield": "a-1.5:1:employee:101"}).dialled == ""


def test_the_sqlite_cdr_returns_each_fallback_row_once_and_starts_again_with_a_new_file(tmp_path):
    path = tmp_path / "master.db"

    def write(*userfields):
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE IF NOT EXISTS cdr (calldate, answerdate, enddate, clid, src, dst, channel, dstchannel,"
                   " lastapp, disposition, linkedid, sequence, userfield)")
        for u in userfields:
            db.execute("INSERT INTO cdr VALUES (?, '', ?, '', '7900', '101', 'PJSIP/c-1', '', 'Dial', 'NO ANSWER', ?, 1, ?)",
                       (T0.astimezone().strftime("%Y-%m-%d %H:%M:%S"), T0.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                        u.split(":")[0], u))
        db.commit()
        db.close()

    cdr = SqliteCdr(f"sqlite:///{path}")
    since = T0 - timedelta(hours=1)
    write("a-1.1:1:employee:101:fallback:101", "a-1.2:1:employee:101")
    assert [r.call_id for r in asyncio.run(cdr.fallback_legs(since))] == ["a-1.1"], "the engines' own legs are not asked for"
    assert asyncio.run(cdr.fallback_legs(since)) == [], "read once"
    write("a-1.3:1:employee:101:fallback:101")
    assert [r.call_id for r in asyncio.run(cdr.fallback_legs(since))] == ["a-1.3"]
    assert asyncio.run(cdr.fallback_legs(T0 + timedelta(hours=1))) == []
    path.unlink()
    write("a-2.1:1:employee:101:fallback:101")
    assert [r.call_id for r in asyncio.run(cdr.fallback_legs(since))] == ["a-2.1"], "a new file is read from its start"
