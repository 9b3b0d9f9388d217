"""Issue 5: after real calls through Asterisk, the history row a manager sees (read back from
the app's journal database) and the CDR rows Asterisk itself wrote (cdr_csv's Master.csv and
cdr_sqlite3_custom's master.db; cdr_pgsql against a real PostgreSQL) — for each way a call can
go. And: the app killed mid-call and started again still leaves the call's history complete."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from pbx_app.history.events import CallStarted
from pbx_app.history.journal import SpooledJournal
from pbx_app.history.rows import HistoryRow, history_row
from pbx_app.history.database import open_store
from tests.support.cdr import master_csv_rows
from tests.support.engines import EngineProcess, all_ended, journal_calls
from tests.support.fanout import Fanout
from tests.support.wait import until

from .conftest import ARI_PASSWORD, ARI_URL, ARI_USER, REPO, asterisk_root, leftovers

ROOT = asterisk_root()
MASTER_CSV = ROOT / "var/log/asterisk/cdr-csv/Master.csv"
MASTER_DB = ROOT / "var/log/asterisk/master.db"

POLICY = """
employees:
  "101": {name: Ivan Petrov, ring_time: 2, on_no_answer: {action: forward, to: "102", announcement: standard}}
  "102": {name: Petr Ivanov, ring_time: 3}
  "103": {name: Anna Smirnova, ring_time: 2, on_no_answer: {action: forward, to: "102", announcement: none}}
  "104": {name: Olga Kuznetsova, ring_time: 2, mailbox: "104@default", on_no_answer: {action: voicemail}}
  "105": {name: Sergei Volkov, ring_time: 2}
"""


# ---- reading what was written -----------------------------------------------------------------


@dataclass
class Cdr:
    """One CDR row, from either backend."""

    dst: str
    dcontext: str
    dstchannel: str
    lastapp: str
    start: datetime
    answer: datetime | None
    end: datetime
    billsec: int
    disposition: str
    uniqueid: str
    userfield: str
    linkedid: str | None = None

    @property
    def leg(self) -> tuple[str, str, str]:
        """(leg, role, who) from our userfield callid:leg:role:who."""
        _, leg, role, who = self.userfield.split(":", 3)
        return leg, role, who


def _time(text: str) -> datetime | None:
    # Asterisk writes its local time; the test bed's root is UTC.
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc) if text else None


def csv_rows(linkedid: str) -> list[Cdr]:
    rows = []
    for d in master_csv_rows(MASTER_CSV.read_text()):
        if d.get("uniqueid") == linkedid:  # the caller's uniqueid: party A of every leg
            rows.append(Cdr(d["dst"], d["dcontext"], d["dstchannel"], d["lastapp"], _time(d["start"]),
                            _time(d["answer"]), _time(d["end"]), int(d["billsec"]), d["disposition"],
                            d["uniqueid"], d["userfield"]))
    return rows


def sqlite_rows(linkedid: str) -> list[Cdr]:
    if not MASTER_DB.exists():
        return []
    db = sqlite3.connect(f"file:{MASTER_DB}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        found = db.execute("SELECT * FROM cdr WHERE linkedid = ? ORDER BY AcctId", (linkedid,)).fetchall()
    finally:
        db.close()
    return [Cdr(r["dst"], r["dcontext"], r["dstchannel"], r["lastapp"], _time(r["calldate"]), _time(r["answerdate"]),
                _time(r["enddate"]), int(r["billsec"]), r["disposition"], r["uniqueid"], r["userfield"], r["linkedid"])
            for r in found]


async def cdr_of(linkedid: str, expected: int, read=None, settle: float = 0.7) -> list[Cdr]:
    """The call's CDR rows once ``expected`` are there, and after a moment in which any extra
    row (one we would not want) would have come too."""
    reads = [read] if read else [csv_rows, sqlite_rows]
    try:
        await until(lambda: all(len(r(linkedid)) >= expected for r in reads), 10, "")
    except TimeoutError:
        pass  # the comparisons below say which rows are missing
    await asyncio.sleep(settle)  # deliberate: no condition announces a row that should not come
    results = [r(linkedid) for r in reads]
    for other in results[1:]:
        assert [(c.dst, c.disposition, c.userfield, c.start, c.answer) for c in other] == [
            (c.dst, c.disposition, c.userfield, c.start, c.answer) for c in results[0]], "the backends agree"
    return results[0]


def near(moment: datetime | None, sip_time: datetime, slack: float = 1.2) -> bool:
    """CDR times have whole seconds; SIPp's trace is in the machine's local time (UTC here)."""
    return moment is not None and abs((moment - sip_time.replace(tzinfo=timezone.utc)).total_seconds()) <= slack


# ---- the app with a real journal ------------------------------------------------------------------


@pytest.fixture
async def journaled_app(start_app, tmp_path):
    """start(policy) → the in-process app writing to a real journal (spool + SQLite) besides the
    test's in-memory one; ``row(call)`` reads the call's history row back from the database."""
    journals: list[SpooledJournal] = []

    async def start(policy: str, database_url: str | None = None):
        url = database_url or f"sqlite:///{tmp_path}/journal.db"
        journal = await SpooledJournal(tmp_path / f"spool{len(journals)}", open_store(url), idle_poll=0.05).start()
        journals.append(journal)
        running = await start_app(policy)
        running.app.journal = Fanout([running.journal, journal])  # flows started from now on
        running.store_url = url
        running.spooled = journal
        return running

    yield start
    for journal in journals:
        await journal.close()


async def history_of(url: str, call_id: str) -> HistoryRow:
    [call] = [c for c in await journal_calls(url) if c.call_id == call_id]
    return history_row(call)


async def ended_call(app, count: int = 1, timeout: float = 30) -> tuple[CallStarted, HistoryRow]:
    """The last call's start event and its history row as the database has it."""
    await app.wait_calls_ended(count, timeout)
    assert await app.spooled.wait_shipped(10)
    started = [e for e in app.journal.events if isinstance(e, CallStarted)][-1]
    return started, await history_of(app.store_url, started.call_id)


def clear_mailbox(box: str) -> None:
    shutil.rmtree(ROOT / "var/spool/asterisk/voicemail/default" / box, ignore_errors=True)


# ---- one test per way a call goes -----------------------------------------------------------------


async def test_dropped_on_no_answer(journaled_app, sip):
    app = await journaled_app(POLICY)
    sip.phone("105", "ring_forever")
    caller = sip.call("105")
    await caller.wait(20)
    call, row = await ended_call(app)
    assert (row.employee, row.status, row.label) == ("105", "missed", None)
    assert row.what_happened == "no answer; busy tone"

    [leg] = await cdr_of(call.channel_id, 1)
    assert (leg.dst, leg.lastapp, leg.disposition, leg.answer) == ("105", "Dial", "NO ANSWER", None)
    assert leg.userfield == f"{call.call_id}:1:employee:105"
    assert leg.dstchannel.startswith("PJSIP/105-")
    # The caller's time in Stasis before the Dial is part of this row: it starts on arrival.
    assert abs((leg.start - call.at).total_seconds()) <= 1.0
    # No second row for the busy tone after the ring ("Stasis … BUSY" would say 105 was busy).


async def test_forwarded_and_answered_by_the_colleague(journaled_app, sip):
    app = await journaled_app(POLICY)
    employee = sip.phone("101", "ring_forever")
    colleague = sip.phone("102", "answer", answer_delay_ms=500)
    caller = sip.call("101", talk_ms=1500)
    assert await caller.wait(30) == 0
    call, row = await ended_call(app)
    assert (row.employee, row.status, row.forwarded_from, row.label) == ("102", "answered", "101", None)
    assert row.what_happened == "no answer; forwarded to 102, answered by 102"
    assert 5 <= row.waited <= 9, "2 s of ringing, the 4.6 s announcement, 0.5 s until 102 answered"

    first, second = await cdr_of(call.channel_id, 2)
    assert (first.dst, first.disposition, first.leg, first.answer) == ("101", "NO ANSWER", ("1", "employee", "101"), None)
    assert (second.dst, second.disposition, second.leg) == ("102", "ANSWERED", ("3", "forward", "102"))
    assert second.dstchannel.startswith("PJSIP/102-")
    [answered] = colleague.sent(200)
    [announcement_began, *_] = caller.received(183)
    assert near(second.answer, answered.at), "answered when 102 picked up"
    assert second.answer > announcement_began.at.replace(tzinfo=timezone.utc) + timedelta(seconds=3), \
        "not when the announcement began"
    assert employee.received("CANCEL")
    # One call, one group: every row of it carries the caller's uniqueid (= linkedid) and our id.
    assert {c.uniqueid for c in (first, second)} == {call.channel_id}
    assert {c.linkedid for c in sqlite_rows(call.channel_id)} == {call.channel_id}
    assert all(c.userfield.startswith(call.call_id + ":") for c in (first, second))


async def test_forwarded_and_not_answered(journaled_app, sip):
    app = await journaled_app(POLICY)
    sip.phone("103", "ring_forever")
    sip.phone("102", "ring_forever")
    caller = sip.call("103")
    await caller.wait(30)
    call, row = await ended_call(app)
    assert (row.employee, row.status, row.forwarded_from) == ("103", "missed", None)
    assert row.what_happened == "no answer; forwarded to 102, not answered (no answer); busy tone"

    first, second = await cdr_of(call.channel_id, 2)
    assert (first.dst, first.disposition, first.leg) == ("103", "NO ANSWER", ("1", "employee", "103"))
    assert (second.dst, second.disposition, second.leg) == ("102", "NO ANSWER", ("2", "forward", "102"))
    assert first.answer is None and second.answer is None and first.billsec == second.billsec == 0


async def test_voicemail_without_a_message(journaled_app, sip):
    clear_mailbox("104")
    app = await journaled_app(POLICY)
    sip.phone("104", "ring_forever")
    caller = sip.call("104", talk_ms=1500)  # hangs up during the greeting
    await caller.wait(30)
    call, row = await ended_call(app)
    assert (row.employee, row.status, row.label) == ("104", "missed", None), "a plain missed call"
    assert row.what_happened == "no answer; voicemail, no message"

    employee, mailbox = await cdr_of(call.channel_id, 2)
    assert (employee.dst, employee.disposition, employee.leg) == ("104", "NO ANSWER", ("1", "employee", "104"))
    assert (mailbox.dcontext, mailbox.lastapp, mailbox.disposition) == ("pbx-voicemail", "VoiceMail", "ANSWERED")
    assert mailbox.leg == ("2", "voicemail", "104")
    assert near(mailbox.answer, caller.received(200)[0].at), "answered when the mailbox answered"


async def test_voicemail_with_a_message(journaled_app, sip):
    clear_mailbox("104")
    app = await journaled_app(POLICY)
    sip.phone("104", "ring_forever")
    caller = sip.call("104", audio_after_ms=13000, talk_ms=6000)  # speaks after the beep
    await caller.wait(45)
    call, row = await ended_call(app, timeout=15)
    assert (row.employee, row.status, row.label) == ("104", "missed", "Voicemail")
    assert row.what_happened == "no answer; voicemail, message left"
    assert list((ROOT / "var/spool/asterisk/voicemail/default/104/INBOX").glob("msg*.txt")), "the message is there"

    employee, mailbox = await cdr_of(call.channel_id, 2)
    assert (employee.disposition, mailbox.lastapp, mailbox.disposition) == ("NO ANSWER", "VoiceMail", "ANSWERED")
    assert mailbox.billsec >= 15, "the greeting, the beep and the message"


async def test_caller_hangs_up_while_the_employee_rings(journaled_app, sip):
    app = await journaled_app(POLICY.replace("ring_time: 2}", "ring_time: 10}"))
    phone = sip.phone("105", "ring_forever")
    caller = sip.call("105", cancel_after_ms=1000)
    await caller.wait(20)
    call, row = await ended_call(app)
    assert (row.employee, row.status) == ("105", "missed")
    assert row.what_happened == "caller hung up while ringing"
    assert phone.received("CANCEL")

    [leg] = await cdr_of(call.channel_id, 1)
    assert (leg.dst, leg.disposition, leg.leg, leg.answer) == ("105", "NO ANSWER", ("1", "employee", "105"), None)
    assert (leg.end - leg.start).total_seconds() <= 2, "the row ends when the caller left, not at the ring time"


async def test_answered_by_the_employee(journaled_app, sip):
    app = await journaled_app(POLICY)
    phone = sip.phone("102", "answer", answer_delay_ms=700)
    caller = sip.call("102", talk_ms=1500)
    assert await caller.wait(20) == 0
    call, row = await ended_call(app)
    assert (row.employee, row.status, row.forwarded_from) == ("102", "answered", None)
    assert 1 <= row.talked <= 3

    [leg] = await cdr_of(call.channel_id, 1)
    assert (leg.dst, leg.disposition, leg.leg) == ("102", "ANSWERED", ("1", "employee", "102"))
    assert near(leg.answer, phone.sent(200)[0].at)


# ---- cdr_pgsql and the journal on a real PostgreSQL -------------------------------------------------


@pytest.fixture
def cdr_pgsql(asterisk, postgres_server):
    """Asterisk's cdr_pgsql writing to the test PostgreSQL over 127.0.0.1 (config/asterisk/
    cdr_pgsql.conf.sample and cdr_pgsql.sql, with this server's port)."""
    import psycopg

    url = postgres_server.new_database("asterisk_cdr")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((REPO / "config/asterisk/cdr_pgsql.sql").read_text())
    dbname = url.rsplit("/", 1)[1]
    conf = (REPO / "config/asterisk/cdr_pgsql.conf.sample").read_text()
    conf = conf.replace("port=5432", f"port={postgres_server.port}").replace("dbname=asterisk", f"dbname={dbname}")
    conf = conf.replace("user=asterisk", "user=pbx").replace("password=change-me", "password=")
    target = ROOT / "etc/asterisk/cdr_pgsql.conf"
    target.write_text(conf)
    loaded = asterisk("cli", "module load cdr_pgsql.so")
    assert "Loaded" in loaded.stdout or "loaded" in loaded.stdout, loaded.stdout + loaded.stderr
    yield url
    asterisk("cli", "module unload cdr_pgsql.so", check=False)
    target.unlink(missing_ok=True)


def pg_rows(url: str):
    import psycopg
    from psycopg.rows import dict_row

    def read(linkedid: str) -> list[Cdr]:
        with psycopg.connect(url, row_factory=dict_row) as conn:
            found = conn.execute("SELECT * FROM cdr WHERE linkedid = %s ORDER BY sequence", (linkedid,)).fetchall()
        return [Cdr(r["dst"], r["dcontext"], r["dstchannel"], r["lastapp"], r["calldate"], r["answer"], r["end"],
                    r["billsec"], r["disposition"], r["uniqueid"], r["userfield"], r["linkedid"]) for r in found]

    return read


async def test_postgresql_site_journal_and_cdr_both_in_postgresql(journaled_app, sip, postgres_server, cdr_pgsql):
    journal_url = postgres_server.new_database("journal")
    app = await journaled_app(POLICY, database_url=journal_url)
    sip.phone("103", "ring_forever")
    colleague = sip.phone("102", "answer", answer_delay_ms=500)
    caller = sip.call("103", talk_ms=1000)
    assert await caller.wait(30) == 0
    call, row = await ended_call(app)
    assert (row.employee, row.status, row.forwarded_from) == ("102", "answered", "103")

    first, second = await cdr_of(call.channel_id, 2, read=pg_rows(cdr_pgsql))
    assert (first.dst, first.disposition, first.leg) == ("103", "NO ANSWER", ("1", "employee", "103"))
    assert (second.dst, second.disposition, second.leg) == ("102", "ANSWERED", ("2", "forward", "102"))
    assert first.linkedid == second.linkedid == call.channel_id
    assert near(second.answer, colleague.sent(200)[0].at)
    # The same rows reached the other backends too.
    assert [c.userfield for c in csv_rows(call.channel_id)] == [first.userfield, second.userfield]


# ---- the app killed mid-call ------------------------------------------------------------------------


async def test_app_killed_while_the_employee_rings_history_is_complete_after_restart(asterisk, ari, sip, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace('"103": {name: Anna Smirnova, ring_time: 2', '"103": {name: Anna Smirnova, ring_time: 6'))
    url = f"sqlite:///{tmp_path}/journal.db"
    app = EngineProcess(tmp_path, "1", {"PBX_ARI_URL": ARI_URL, "PBX_ARI_USER": ARI_USER, "PBX_ARI_PASSWORD": ARI_PASSWORD,
                                        "PBX_DATABASE_URL": url, "PBX_POLICY": str(policy)})
    try:
        await app.start().healthy()
        employee = sip.phone("103", "ring_forever")
        colleague = sip.phone("102", "answer", answer_delay_ms=300)
        caller = sip.call("103", talk_ms=1000)
        await until(lambda: employee.received("INVITE"), 5, "the employee's phone rings")
        app.kill()  # while it rings: the caller is out in Dial()
        await app.start().healthy()  # the same engine again, on the same spool
        assert await caller.wait(30) == 0
        assert colleague.received("INVITE") and caller.received(200), "the restarted app forwarded the call"
        assert "taken over at first:0:1" in app.log(), "from the channel's variables"

        [call] = await all_ended(url, 1, timeout=10)
        assert [(l.leg, l.role, l.outcome) for l in call.legs] == [(1, "employee", "no_answer"), (2, "forward", "answered")]
        assert call.started_at is not None and call.caller == "79001234567", "written by the app that was killed"
        row = history_row(call)
        assert (row.employee, row.status, row.forwarded_from) == ("102", "answered", "103")

        first_leg, second_leg = await cdr_of(call.channel_id, 2)
        assert (first_leg.disposition, first_leg.leg) == ("NO ANSWER", ("1", "employee", "103"))
        assert (second_leg.disposition, second_leg.leg) == ("ANSWERED", ("2", "forward", "102"))
    finally:
        app.stop()
    channels, bridges = await leftovers(ari)
    assert not channels and not bridges
