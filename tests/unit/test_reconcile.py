"""Calls left "in progress" by an engine that died: ended from Asterisk's CDR once their channel
has been gone for the grace period, and shown in history as the manager expects."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import datetime, timedelta, timezone

from pbx_app.history.cdr import CdrLeg, DefaultCdr, open_cdr
from pbx_app.history.events import CallStarted, LegEnded, LegStarted, MemoryJournal
from pbx_app.history.reconcile import Reconciler
from pbx_app.history.records import fold
from pbx_app.history.rows import history_row

T0 = datetime(2026, 11, 29, 8, 40, tzinfo=timezone.utc)


class Store:
    """The journal's database, as far as the reconciler reads it: the calls not ended yet."""

    def __init__(self, journal: MemoryJournal):
        self.journal = journal

    async def calls(self, start, end, open_only=False):
        return [c for c in fold(self.journal.events) if not open_only or c.result is None]


class Cdr:
    def __init__(self, rows):
        self.rows = rows

    async def legs(self, linkedid):
        return self.rows


def leg(n, role, who, disposition, answer=None, fallback=False):
    return CdrLeg("1795.2", n, role, who, fallback, disposition, "Dial", f"PJSIP/{who}-0001", T0, answer,
                  T0 + timedelta(seconds=10))


async def started(journal):
    await journal.record(CallStarted("1795.2", T0, "79001234567", "101", "1795.2"))
    await journal.record(LegStarted("1795.2", 1, T0, "employee", ("101",)))


async def test_a_call_whose_channel_is_gone_for_the_grace_period_is_ended_from_its_cdr():
    journal = MemoryJournal()
    await started(journal)
    now = [T0 + timedelta(minutes=1)]
    cdr = Cdr([leg(1, "employee", "101", "NO ANSWER"),
               leg(3, "forward", "102", "ANSWERED", answer=T0 + timedelta(seconds=8), fallback=True)])
    reconciler = Reconciler(Store(journal), journal, cdr, grace=5, clock=lambda: now[0])
    assert await reconciler.reconcile({"1795.2"}) == 0, "its channel is still there: in progress"
    assert await reconciler.reconcile(set()) == 0, "gone only now: its owner may still write its end"
    now[0] += timedelta(seconds=6)
    assert await reconciler.reconcile(set()) == 1
    [call] = fold(journal.events)
    row = history_row(call)
    assert (row.employee, row.status, row.forwarded_from) == ("102", "answered", "101")
    assert row.what_happened == ("no answer; forwarded to 102, answered by 102; "
                                 "carried on by the dialplan while the app was down")
    assert await reconciler.reconcile(set()) == 0, "ended once"


async def test_a_flow_of_ours_still_on_the_call_is_left_alone():
    journal = MemoryJournal()
    await started(journal)
    now = [T0]
    reconciler = Reconciler(Store(journal), journal, Cdr([]), grace=0, clock=lambda: now[0], busy=lambda c: True)
    assert await reconciler.reconcile(set()) == 0
    assert fold(journal.events)[0].result is None


async def test_without_a_cdr_the_call_ends_as_failed_and_its_open_legs_are_closed():
    journal = MemoryJournal()
    await started(journal)
    now = [T0]
    reconciler = Reconciler(Store(journal), journal, None, grace=0, clock=lambda: now[0])
    assert await reconciler.reconcile(set()) == 1
    [call] = fold(journal.events)
    assert call.result == "failed" and call.legs[0].outcome == "not_known", "no guess: nothing knows"
    row = history_row(call)
    assert row.status == "missed"
    assert row.what_happened == "what happened is not known; while the app was down"
    assert [e for e in journal.events if isinstance(e, LegEnded)][0].cause == "while the app was down"


async def test_an_unreadable_cdr_tells_not_known_never_caller_hung_up(tmp_path):
    journal = MemoryJournal()
    await started(journal)
    reconciler = Reconciler(Store(journal), journal, DefaultCdr((str(tmp_path / "none.db"),)), grace=0,
                            clock=lambda: T0)
    assert await reconciler.reconcile(set()) == 1
    [call] = fold(journal.events)
    assert "caller hung up" not in history_row(call).what_happened
    assert call.legs[0].outcome == "not_known"


def test_sqlite_cdr_times_are_read_in_the_local_zone_they_were_written_in(tmp_path, monkeypatch):
    """cdr_sqlite3_custom writes local time as text; Asterisk in Moscow wrote 11:40 for 08:40 UTC."""
    monkeypatch.setenv("TZ", "Europe/Moscow")
    time.tzset()
    try:
        db = sqlite3.connect(tmp_path / "master.db")
        db.execute("CREATE TABLE cdr (calldate, answerdate, enddate, userfield, disposition, lastapp, dstchannel,"
                   " linkedid, sequence)")
        db.execute("INSERT INTO cdr VALUES ('2026-11-29 11:40:00', '2026-11-29 11:40:08', '2026-11-29 11:40:10',"
                   " '1795.2:1:employee:101', 'ANSWERED', 'Dial', 'PJSIP/101-1', '1795.2', 1)")
        db.commit()
        db.close()
        [row] = asyncio.run(open_cdr(f"sqlite:///{tmp_path}/master.db").legs("1795.2"))
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert row.start == T0 and row.answer == T0 + timedelta(seconds=8)


async def test_a_call_of_a_node_taken_as_lost_ends_as_lost_with_that_node_after_the_grace():
    journal = MemoryJournal()
    await journal.record(CallStarted("b-1795.2", T0, "79001234567", "101", "b-1795.2"))
    await journal.record(LegStarted("b-1795.2", 1, T0, "employee", ("101",)))
    await journal.record(CallStarted("a-1795.3", T0, "79001234568", "102", "a-1795.3"))
    now = [T0 + timedelta(minutes=3)]
    reconciler = Reconciler(Store(journal), journal, Cdr([]), grace=5, clock=lambda: now[0])
    assert await reconciler.reconcile({"a-1795.3"}, frozenset({"b"})) == 0, "the grace still applies"
    now[0] += timedelta(seconds=6)
    assert await reconciler.reconcile({"a-1795.3"}, frozenset({"b"})) == 1
    calls = {c.call_id: c for c in fold(journal.events)}
    lost = calls["b-1795.2"]
    assert (lost.result, lost.detail) == ("failed", "lost with node b")
    assert lost.legs[0].outcome == "not_known" and lost.legs[0].cause == "lost with node b"
    assert history_row(lost).what_happened == "what happened is not known; lost with node b"
    assert calls["a-1795.3"].result is None, "node a still has its channel: in progress"
