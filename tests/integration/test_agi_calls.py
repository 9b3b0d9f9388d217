"""Issue 15: the FastAGI mode through the real Asterisk — callers from 127.0.0.4 land in
pbx-direct-agi (config/asterisk/pjsip.conf), the dialplan does every step and reports back to
the FastAGI server running in this process. For each case the history row and the CDR rows are
those of the ARI mode (test_history_calls.py): same legs, same userfields, same dispositions."""

from __future__ import annotations

from datetime import timezone

import pytest

from pbx_app.agi import AgiServer
from pbx_app.agi.secret import read_secret
from pbx_app.agi.seen import SeenCalls
from pbx_app.crm import CrmDirectory
from pbx_app.history.events import CallStarted, LegEnded, LegStarted, MemoryJournal
from pbx_app.history.journal import SpooledJournal
from pbx_app.history.rows import history_row
from pbx_app.history.database import open_store
from pbx_app.policy import parse_policy
from tests.support.engines import EngineProcess, all_ended
from tests.support.fanout import Fanout
from tests.support.wait import until

from .conftest import RunningApp, leftovers
from .test_forwarding import DEPARTMENT as RINGALL_DEPARTMENT
from .test_history_calls import POLICY, ROOT, cdr_of, clear_mailbox, ended_call, near
from .test_policy_calls import CALLER, OWN_FORWARD

AGI_CALLER_IP = "127.0.0.4"
AGI_BIND = ("127.0.0.1", 4573)  # the dialplan's default PBX_AGI_SERVER
SECRET_FILE = ROOT / "etc/asterisk/pbx_agi_secret.conf"  # scripts/testbed puts it there for the dialplan


@pytest.fixture
async def agi_app(ari, tmp_path):
    """start(policy) → the FastAGI server in this process, journal in memory and in SQLite.
    On teardown: no channel left in Asterisk."""
    started: list = []

    async def start(policy_yaml: str, crm=None) -> RunningApp:
        policy = parse_policy(policy_yaml, "<test policy>")
        memory = MemoryJournal()
        url = f"sqlite:///{tmp_path}/journal.db"
        spooled = await SpooledJournal(tmp_path / "spool", open_store(url), idle_poll=0.05).start()
        server = AgiServer(lambda: policy, Fanout([memory, spooled]), crm=crm, secret=read_secret(SECRET_FILE),
                           seen=SeenCalls(spooled.store.call))
        listening = await server.serve(*AGI_BIND)
        running = RunningApp(server, None, memory)
        running.spooled, running.store_url = spooled, url
        started.append((listening, spooled))
        return running

    yield start
    channels, _ = await leftovers(ari)
    for listening, spooled in started:
        listening.close()
        await spooled.close()
    assert not channels, f"channels left in Asterisk: {[c['name'] for c in channels]}"


def call(sip, ext: str, **kwargs):
    return sip.call(ext, source_ip=AGI_CALLER_IP, **kwargs)


def legs(app, cls=LegEnded):
    return [e for e in app.journal.events if isinstance(e, cls)]


# ---- the cases of the ARI mode's history tests, through the AGI context ------------------------


async def test_dropped_busy_on_no_answer(agi_app, sip):
    app = await agi_app(POLICY)
    sip.phone("105", "ring_forever")
    caller = call(sip, "105")
    await caller.wait(20)
    assert caller.received(486), "busy tone"
    started, row = await ended_call(app)
    assert started.call_id == started.channel_id, "the call id is the caller's UNIQUEID"
    assert started.channel_name.startswith("PJSIP/client-agi-")
    assert (row.employee, row.status, row.label) == ("105", "missed", None)
    assert row.what_happened == "no answer; busy tone"

    [leg] = await cdr_of(started.channel_id, 1)
    assert (leg.dst, leg.lastapp, leg.disposition, leg.answer) == ("105", "Dial", "NO ANSWER", None)
    assert leg.userfield == f"{started.call_id}:1:employee:105"
    assert leg.dstchannel.startswith("PJSIP/105-")
    assert abs((leg.start - started.at).total_seconds()) <= 1.0


async def test_dropped_with_the_message(agi_app, sip):
    app = await agi_app(POLICY.replace('"105": {name: Sergei Volkov, ring_time: 2}',
                                       '"105": {name: Sergei Volkov, ring_time: 2, on_no_answer: {action: drop, drop: message}}'))
    sip.phone("105", "ring_forever")
    caller = call(sip, "105")
    await caller.wait(30)
    started, row = await ended_call(app)
    assert [(e.role, e.leg) for e in legs(app, LegStarted)] == [("employee", 1), ("drop_message", 2)]
    assert [(e.outcome, e.cause) for e in legs(app)] == [
        ("no_answer", legs(app)[0].cause), ("played", "sound:pbx_app/manager-unavailable")]
    assert app.ended()[-1].detail == "message, then hangup"
    assert caller.received(183) and not caller.received(200), "the message went out as early media"
    assert (row.status, row.what_happened) == ("missed", "no answer; message played, then hung up")
    [leg] = await cdr_of(started.channel_id, 1)
    assert (leg.dst, leg.disposition) == ("105", "NO ANSWER"), "no row for the message"


async def test_forwarded_and_answered_by_the_colleague(agi_app, sip):
    app = await agi_app(POLICY)
    employee = sip.phone("101", "ring_forever")
    colleague = sip.phone("102", "answer", answer_delay_ms=500)
    caller = call(sip, "101", talk_ms=1500)
    assert await caller.wait(30) == 0
    started, row = await ended_call(app)
    assert (row.employee, row.status, row.forwarded_from, row.label) == ("102", "answered", "101", None)
    assert row.what_happened == "no answer; forwarded to 102, answered by 102"
    assert 5 <= row.waited <= 9, "2 s of ringing, the 4.6 s announcement, 0.5 s until 102 answered"
    assert [(e.leg, e.outcome) for e in legs(app)] == [(1, "no_answer"), (2, "played"), (3, "answered")]
    assert app.ended()[-1].detail == "answered by 102"

    first, second = await cdr_of(started.channel_id, 2)
    assert (first.dst, first.disposition, first.leg, first.answer) == ("101", "NO ANSWER", ("1", "employee", "101"), None)
    assert (second.dst, second.disposition, second.leg) == ("102", "ANSWERED", ("3", "forward", "102"))
    assert second.dstchannel.startswith("PJSIP/102-")
    [answered] = colleague.sent(200)
    assert near(second.answer, answered.at), "answered when 102 picked up"
    [announcement_began, *_] = caller.received(183)
    assert second.answer > announcement_began.at.replace(tzinfo=timezone.utc), "not when the announcement began"
    assert employee.received("CANCEL")
    assert all(c.userfield.startswith(started.call_id + ":") for c in (first, second))
    answered_leg = legs(app)[-1]
    assert near(answered_leg.answered_at, answered.at), "the journal's answer time is 102's"


async def test_forwarded_and_not_answered(agi_app, sip):
    app = await agi_app(POLICY)
    sip.phone("103", "ring_forever")
    sip.phone("102", "ring_forever")
    caller = call(sip, "103")
    await caller.wait(30)
    started, row = await ended_call(app)
    assert (row.employee, row.status, row.forwarded_from) == ("103", "missed", None)
    assert row.what_happened == "no answer; forwarded to 102, not answered (no answer); busy tone"
    assert not caller.received(183), "no announcement was asked for"

    first, second = await cdr_of(started.channel_id, 2)
    assert (first.dst, first.disposition, first.leg) == ("103", "NO ANSWER", ("1", "employee", "103"))
    assert (second.dst, second.disposition, second.leg) == ("102", "NO ANSWER", ("2", "forward", "102"))
    assert first.answer is None and second.answer is None and first.billsec == second.billsec == 0


DEPARTMENT = RINGALL_DEPARTMENT.replace("STRATEGY", "ringall")


async def test_department_ringall_one_answers(agi_app, sip):
    app = await agi_app(DEPARTMENT)
    sip.phone("101", "ring_forever")
    others = [sip.phone("102", "ring_forever"), sip.phone("104", "ring_forever")]
    answering = sip.phone("103", "answer", answer_delay_ms=800)
    caller = call(sip, "101", talk_ms=1000)
    assert await caller.wait(30) == 0
    started, row = await ended_call(app)
    assert (row.employee, row.status, row.forwarded_from, row.department) == ("103", "answered", "101", "sales")
    [_, forward] = legs(app, LegStarted)
    assert (forward.targets, forward.department) == (("102", "103", "104"), "sales")
    assert legs(app)[-1].answered_by == "103"
    for loser in others:
        assert loser.received("CANCEL")
    assert answering.sent(200)

    # Dial() to a group: one CDR row per phone rung, all with the leg's userfield.
    first, *group = await cdr_of(started.channel_id, 4)
    assert (first.dst, first.disposition, first.leg) == ("101", "NO ANSWER", ("1", "employee", "101"))
    assert {c.leg for c in group} == {("2", "forward", "102+103+104")} and {c.dst for c in group} == {"sales"}
    assert sorted((c.dstchannel.split("-")[0], c.disposition) for c in group) == [
        ("PJSIP/102", "NO ANSWER"), ("PJSIP/103", "ANSWERED"), ("PJSIP/104", "NO ANSWER")]


async def test_voicemail_without_a_message(agi_app, sip):
    clear_mailbox("104")
    app = await agi_app(POLICY)
    sip.phone("104", "ring_forever")
    caller = call(sip, "104", talk_ms=1500)  # hangs up during the greeting
    await caller.wait(30)
    started, row = await ended_call(app)
    assert (row.employee, row.status, row.label) == ("104", "missed", None)
    assert row.what_happened == "no answer; voicemail, no message"

    employee, mailbox = await cdr_of(started.channel_id, 2)
    assert (employee.dst, employee.disposition, employee.leg) == ("104", "NO ANSWER", ("1", "employee", "104"))
    assert (mailbox.dcontext, mailbox.lastapp, mailbox.disposition) == ("pbx-agi", "VoiceMail", "ANSWERED")
    assert (mailbox.dst, mailbox.leg) == ("104", ("2", "voicemail", "104"))
    assert near(mailbox.answer, caller.received(200)[0].at), "answered when the mailbox answered"


async def test_voicemail_with_a_message(agi_app, sip):
    clear_mailbox("104")
    app = await agi_app(POLICY)
    sip.phone("104", "ring_forever")
    caller = call(sip, "104", audio_after_ms=13000, talk_ms=6000)  # speaks after the beep
    await caller.wait(45)
    started, row = await ended_call(app, timeout=15)
    assert (row.employee, row.status, row.label) == ("104", "missed", "Voicemail")
    assert row.what_happened == "no answer; voicemail, message left"
    assert list((ROOT / "var/spool/asterisk/voicemail/default/104/INBOX").glob("msg*.txt")), "the message is there"

    employee, mailbox = await cdr_of(started.channel_id, 2)
    assert (employee.disposition, mailbox.lastapp, mailbox.disposition) == ("NO ANSWER", "VoiceMail", "ANSWERED")
    assert mailbox.billsec >= 15, "the greeting, the beep and the message"


BUSY_UNREACHABLE = """
employees:
  "101": {name: Ivan, ring_time: 5, on_no_answer: {action: drop, drop: busy},
          on_busy: {action: forward, to: "102", announcement: none}}
  "102": {name: Petr, ring_time: 3}
  "109": {name: Nobody, ring_time: 5, on_unreachable: {action: forward, to: "102", announcement: none}}
"""


async def test_busy_employee_goes_to_the_on_busy_forward_at_once(agi_app, sip):
    app = await agi_app(BUSY_UNREACHABLE)
    sip.phone("101", "busy")
    colleague = sip.phone("102", "answer", answer_delay_ms=300)
    caller = call(sip, "101", talk_ms=500)
    assert await caller.wait(30) == 0
    started, row = await ended_call(app)
    assert [(e.outcome, e.answered_by) for e in legs(app)] == [("busy", None), ("answered", "102")]
    assert legs(app)[0].cause.startswith("BUSY,")
    assert (row.employee, row.status, row.forwarded_from) == ("102", "answered", "101")
    assert colleague.received("INVITE")
    first, second = await cdr_of(started.channel_id, 2)
    assert (first.dst, first.disposition, second.dst, second.disposition) == ("101", "BUSY", "102", "ANSWERED")


async def test_unreachable_employee_goes_to_the_on_unreachable_forward(agi_app, sip):
    app = await agi_app(BUSY_UNREACHABLE)
    sip.phone("102", "answer", answer_delay_ms=300)
    caller = call(sip, "109", talk_ms=500)  # 109 has no contact
    assert await caller.wait(30) == 0
    started, row = await ended_call(app)
    assert [e.outcome for e in legs(app)] == ["unreachable", "answered"]
    assert (row.employee, row.status, row.forwarded_from) == ("102", "answered", "109")




async def test_crm_rule_sends_the_call_to_the_responsible_manager(agi_app, sip):
    policy = OWN_FORWARD + f"""crm:
  clients:
    "+{CALLER}": {{manager: "103"}}
"""
    directory = CrmDirectory()
    try:
        app = await agi_app(policy, crm=directory)
        sip.phone("101", "ring_forever")
        own_target = sip.phone("102", "answer", answer_delay_ms=200)
        manager = sip.phone("103", "answer", answer_delay_ms=300)
        caller = call(sip, "101", talk_ms=500, caller=CALLER)
        assert await caller.wait(30) == 0
        started, row = await ended_call(app)
    finally:
        await directory.close()
    assert app.ended()[-1].detail == "answered by 103"
    assert manager.sent(200) and not own_target.received("INVITE"), "101's own forward target was never rung"
    assert any("CRM rule wins over 101's own setting (forward to 102)" in r for r in started.reasons)
    assert (row.employee, row.status, row.forwarded_from) == ("103", "answered", "101")


async def test_employee_on_vacation_is_not_rung(agi_app, sip):
    policy = """
site: {timezone: UTC}
employees:
  "101": {name: Ivan, ring_time: 2, absences: [{from: "2000-01-01", to: "2999-12-31", reason: vacation}],
          on_no_answer: {action: forward, to: "102", announcement: none}}
  "102": {name: Petr, ring_time: 3}
"""
    app = await agi_app(policy)
    employee = sip.phone("101", "answer")
    colleague = sip.phone("102", "answer", answer_delay_ms=300)
    caller = call(sip, "101", talk_ms=500)
    assert await caller.wait(30) == 0
    started, row = await ended_call(app)
    assert not employee.received("INVITE"), "the employee on vacation never rang"
    assert colleague.received("INVITE")
    assert [(e.role, e.targets) for e in legs(app, LegStarted)] == [("forward", ("102",))]
    assert (row.employee, row.status) == ("102", "answered")
    [leg] = await cdr_of(started.channel_id, 1)
    assert (leg.dst, leg.disposition, leg.leg) == ("102", "ANSWERED", ("1", "forward", "102"))
    employee.stop()


async def test_caller_hangs_up_while_the_employee_rings(agi_app, sip):
    app = await agi_app(POLICY.replace("ring_time: 2}", "ring_time: 10}"))
    phone = sip.phone("105", "ring_forever")
    caller = call(sip, "105", cancel_after_ms=1000)
    await caller.wait(20)
    started, row = await ended_call(app)
    assert row.what_happened == "caller hung up while ringing"
    assert phone.received("CANCEL")
    [leg] = await cdr_of(started.channel_id, 1)
    assert (leg.dst, leg.disposition, leg.leg) == ("105", "NO ANSWER", ("1", "employee", "105"))


async def test_answered_by_the_employee_who_hangs_up_first(agi_app, sip):
    app = await agi_app(POLICY)
    phone = sip.phone("102", "answer", answer_delay_ms=700)
    caller = call(sip, "102", talk_ms=5000)  # the phone's scenario hangs up first
    await caller.wait(20)
    started, row = await ended_call(app)
    assert (row.employee, row.status, row.forwarded_from) == ("102", "answered", None)
    [leg] = await cdr_of(started.channel_id, 1)
    assert (leg.dst, leg.disposition, leg.leg) == ("102", "ANSWERED", ("1", "employee", "102"))
    assert near(leg.answer, phone.sent(200)[0].at)


# ---- the same call through both engines ----------------------------------------------------------


def journal_story(events) -> list[tuple]:
    """The journal without ids and clock times: what the two engines must agree on."""
    story = []
    for e in events:
        if isinstance(e, CallStarted):
            story.append(("started", e.caller, e.extension, e.reasons))
        elif isinstance(e, LegStarted):
            story.append(("leg", e.leg, e.role, e.targets, e.department))
        elif isinstance(e, LegEnded):
            story.append(("leg ended", e.leg, e.outcome, e.answered_by, e.answered_at is not None, e.cause))
        else:
            story.append(("ended", e.result, e.detail))
    return story


def cdr_story(rows) -> list[tuple]:
    return sorted((c.dst, c.disposition, c.leg, c.dstchannel.split("-")[0], c.answer is not None) for c in rows)


CASES = {
    "forward answered": (POLICY, "101", {"101": "ring_forever", "102": "answer"}, 2),
    "department": (DEPARTMENT, "101", {"101": "ring_forever", "102": "ring_forever", "103": "answer", "104": "busy"}, 4),
    "voicemail": (POLICY, "104", {"104": "ring_forever"}, 2),
    "drop message": (POLICY.replace('"105": {name: Sergei Volkov, ring_time: 2}',
                                    '"105": {name: Sergei Volkov, ring_time: 2, on_no_answer: {action: drop, drop: message}}'),
                     "105", {"105": "ring_forever"}, 1),
}


@pytest.mark.parametrize("case", CASES)
async def test_both_engines_write_the_same_journal_and_cdr(case, agi_app, start_app, sip):
    policy, ext, phones, rows = CASES[case]
    stories = []
    for engine in ("ari", "agi"):
        clear_mailbox("104")
        app = await (start_app(policy) if engine == "ari" else agi_app(policy))
        for phone, behaviour in phones.items():
            sip.phone(phone, behaviour, answer_delay_ms=500)
        caller = sip.call(ext, talk_ms=1500, source_ip="127.0.0.1" if engine == "ari" else AGI_CALLER_IP)
        await caller.wait(30)
        await sip.finish()
        await app.wait_calls_ended()
        [started] = [e for e in app.journal.events if isinstance(e, CallStarted)]
        stories.append((journal_story(app.journal.events), cdr_story(await cdr_of(started.channel_id, rows))))
        if engine == "ari":
            await app.app.drain(5)
            app.task.cancel()
    (ari_journal, ari_cdr), (agi_journal, agi_cdr) = stories
    assert agi_journal == ari_journal
    assert agi_cdr == ari_cdr


# ---- the server down ------------------------------------------------------------------------------


async def test_server_down_the_dialplan_rings_the_employee_then_busy(ari, sip, asterisk):
    asterisk("cli", "dialplan set global PBX_FALLBACK_RINGTIME 2")
    try:
        phone = sip.phone("105", "ring_forever")
        caller = call(sip, "105")
        await caller.wait(20)
    finally:
        asterisk("cli", "dialplan set global PBX_FALLBACK_RINGTIME 120")
    assert phone.received("INVITE") and caller.received(486)
    channels, _ = await leftovers(ari)
    assert not channels


# ---- `pbx-app agi` as its own process, killed mid-call ----------------------------------------------


async def test_agi_server_killed_while_the_employee_rings_another_takes_the_next_step(asterisk, ari, sip, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace('"103": {name: Anna Smirnova, ring_time: 2', '"103": {name: Anna Smirnova, ring_time: 6'))
    url = f"sqlite:///{tmp_path}/journal.db"
    server = EngineProcess(tmp_path, "agi", {"PBX_DATABASE_URL": url, "PBX_POLICY": str(policy),
                                             "PBX_USERS": str(tmp_path / "users.json"),
                                             "PBX_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
                                             "PBX_AGI_SECRET_FILE": str(SECRET_FILE)}, command="agi")
    server.env.pop("PBX_ARI_PASSWORD", None)  # the FastAGI server needs no ARI
    try:
        await server.start().healthy()
        employee = sip.phone("103", "ring_forever")
        colleague = sip.phone("102", "answer", answer_delay_ms=300)
        caller = call(sip, "103", talk_ms=1000)
        await until(lambda: employee.received("INVITE"), 5, "the employee's phone rings")
        server.kill()  # while Dial() rings: no request of this call is open
        await server.start().healthy()
        assert await caller.wait(30) == 0
        assert colleague.received("INVITE") and caller.received(200), "the new server forwarded the call"

        [record] = await all_ended(url, 1, timeout=10)
        assert [(l.leg, l.role, l.outcome) for l in record.legs] == [(1, "employee", "no_answer"), (2, "forward", "answered")]
        assert record.caller == "79001234567", "journalled by the server that was killed"
        row = history_row(record)
        assert (row.employee, row.status, row.forwarded_from) == ("102", "answered", "103")
        first_leg, second_leg = await cdr_of(record.channel_id, 2)
        assert (first_leg.disposition, first_leg.leg) == ("NO ANSWER", ("1", "employee", "103"))
        assert (second_leg.disposition, second_leg.leg) == ("ANSWERED", ("2", "forward", "102"))
    finally:
        server.stop()
    channels, _ = await leftovers(ari)
    assert not channels
