"""The history a manager reads: whom each call counts for and whether it was missed. The calls
are played through the real flow against the fake Asterisk, so the journal events are the
ones the app really emits."""

from __future__ import annotations

import pytest

from pbx_app.history.events import CallEnded, CallStarted, LegEnded, LegStarted
from pbx_app.history.records import CallRecord, LegRecord, fold
from pbx_app.history.rows import history, history_row, who_answered
from tests.support.fake_calls import call_on_fake
from tests.unit.test_journal_store import T0, at, forwarded_call

POLICY = """
employees:
  "101": {name: Ivan, ring_time: 3, on_no_answer: {action: forward, to: "102", announcement: standard}}
  "102": {name: Petr, ring_time: 5}
  "103": {name: Anna, ring_time: 4, on_no_answer: {action: drop, drop: message}}
  "104": {name: Olga, mailbox: "104@default", ring_time: 4, on_no_answer: {action: voicemail}}
  "105": {name: Sergei, ring_time: 4, on_no_answer: {action: forward, to: sales, announcement: none}}
departments:
  sales: {members: ["102", "103"], strategy: ringall, ring_time: 7}
"""


async def row_of(phones, extension, talk_ends="callee", voicemail=None):
    call = await call_on_fake(extension, POLICY, phones, talk_ends=talk_ends, voicemail=voicemail)
    return history_row(call.record())


async def test_answered_by_the_employee_is_a_call_to_the_employee():
    row = await row_of({"PJSIP/102": "answer"}, "102")
    assert (row.employee, row.status, row.label, row.forwarded_from) == ("102", "answered", None, None)
    assert row.what_happened == "answered"


async def test_dropped_on_no_answer_is_missed_by_the_employee():
    row = await row_of({}, "102")
    assert (row.employee, row.status, row.label) == ("102", "missed", None)
    assert row.what_happened == "no answer; busy tone"


async def test_dropped_with_a_message_is_missed_by_the_employee():
    row = await row_of({}, "103")
    assert (row.employee, row.status) == ("103", "missed")
    assert row.what_happened == "no answer; message played, then hung up"


async def test_busy_employee_dropped_is_missed_by_the_employee():
    row = await row_of({"PJSIP/102": "busy"}, "102")
    assert (row.employee, row.status, row.what_happened) == ("102", "missed", "busy; busy tone")


async def test_forward_answered_by_the_colleague_is_a_call_to_the_colleague():
    row = await row_of({"PJSIP/102": "answer"}, "101")
    assert (row.employee, row.status, row.forwarded_from, row.dialled) == ("102", "answered", "101", "101")
    assert row.what_happened == "no answer; forwarded to 102, answered by 102"


async def test_forward_not_answered_is_missed_by_the_original_employee():
    row = await row_of({}, "101")
    assert (row.employee, row.status, row.forwarded_from) == ("101", "missed", None)
    assert row.what_happened == "no answer; forwarded to 102, not answered (no answer); busy tone"


async def test_forward_to_a_department_answered_by_a_member_is_a_call_to_that_member():
    row = await row_of({"PJSIP/103": "answer"}, "105")
    assert (row.employee, row.status, row.department, row.forwarded_from) == ("103", "answered", "sales", "105")


async def test_forward_to_a_department_nobody_answers_is_missed_by_the_original_employee():
    row = await row_of({}, "105")
    assert (row.employee, row.status) == ("105", "missed")


async def test_voicemail_without_a_message_is_a_plain_missed_call():
    row = await row_of({}, "104", voicemail={"104@default": False})
    assert (row.employee, row.status, row.label) == ("104", "missed", None)
    assert row.what_happened == "no answer; voicemail, no message"


async def test_voicemail_with_a_message_is_missed_and_labelled_voicemail():
    row = await row_of({}, "104", voicemail={"104@default": True})
    assert (row.employee, row.status, row.label) == ("104", "missed", "Voicemail")
    assert row.what_happened == "no answer; voicemail, message left"


async def test_caller_hanging_up_while_it_rings_is_missed_by_the_employee():
    row = await row_of({"PJSIP/102": "caller_leaves"}, "102")
    assert (row.employee, row.status) == ("102", "missed")
    assert row.what_happened == "caller hung up while ringing"


async def test_the_caller_hanging_up_after_talking_is_still_answered():
    row = await row_of({"PJSIP/102": "answer"}, "102", talk_ends="caller")
    assert (row.employee, row.status) == ("102", "answered")


def test_times_waited_and_talked():
    [call] = fold(forwarded_call())
    row = history_row(call)
    assert row.waited == 8.0, "from the call's start until the colleague answered"
    assert row.talked == 12.0


def test_a_call_still_ringing_is_in_progress_and_an_answered_one_shows_answered_already():
    events = forwarded_call()
    assert history_row(fold(events[:3])[0]).status == "in progress"
    [call] = fold(events[:7])  # answered, talking, no CallEnded yet
    row = history_row(call)
    assert (row.status, row.employee, row.talked) == ("answered", "102", None)


def test_a_call_failed_inside_the_app_is_missed_by_the_employee():
    events = [
        CallStarted("x", T0, "7900", "101", "ch"),
        LegStarted("x", 1, at(1), "employee", ("101",)),
        LegEnded("x", 1, at(3), "no_answer"),
        CallEnded("x", at(4), "failed", "internal error, busy given"),
    ]
    row = history_row(fold(events)[0])
    assert (row.employee, row.status) == ("101", "missed")
    assert row.what_happened == "no answer; internal error, busy given"


def test_a_caller_leaving_during_the_announcement_is_missed_by_the_employee():
    events = forwarded_call()[:4] + [CallEnded("c1", at(4), "caller_hung_up", "the caller hung up")]
    row = history_row(fold(events)[0])
    assert (row.employee, row.status) == ("101", "missed")
    assert row.what_happened == "no answer; caller hung up during the announcement"


def test_an_employee_away_and_skipped_then_forwarded_counts_like_any_forward():
    events = [
        CallStarted("x", T0, "7900", "101", "ch", ("101 is absent",)),
        LegStarted("x", 1, at(0.1), "forward", ("102",)),
        LegEnded("x", 1, at(5), "no_answer"),
        CallEnded("x", at(5), "dropped", "busy"),
    ]
    row = history_row(fold(events)[0])
    assert (row.employee, row.status, row.what_happened) == (
        "101", "missed", "not rung; forwarded to 102, not answered (no answer); busy tone")


@pytest.mark.parametrize(
    "answered_by, targets, who",
    [("102", ("102", "103"), "102"), ("PJSIP/103-0000002a", ("102", "103"), "103"), ("?", ("102",), "102"),
     (None, ("102", "103"), "?")],
)
def test_who_answered_copes_with_what_a_resumed_call_knows(answered_by, targets, who):
    assert who_answered(LegRecord(1, "forward", targets, outcome="answered", answered_by=answered_by)) == who


def test_rows_come_oldest_first():
    calls = fold(forwarded_call("b", 60) + forwarded_call("a", 0))
    assert [r.call_id for r in history(calls)] == ["a", "b"]
    assert history([CallRecord("no-start")])[0].status == "in progress"
