"""History tells a callback as part of the call that asked for it: the request, each attempt,
and how it ended, on one row."""

from datetime import datetime, timedelta, timezone

from pbx_app.history.events import CallEnded, CallStarted, LegEnded, LegStarted
from pbx_app.history.records import fold
from pbx_app.history.rows import history_row

T = datetime(2026, 11, 29, 9, 10, 1, tzinfo=timezone.utc)
C = "1795941604.2"


def at(s):
    return T + timedelta(seconds=s)


def asked():
    return [CallStarted(C, T, "79001234567", "101", C), LegStarted(C, 1, at(0), "employee", ("101",)),
            LegEnded(C, 1, at(20), "no_answer"), LegStarted(C, 2, at(20), "callback_offer", ("101",)),
            LegEnded(C, 2, at(23), "callback_requested"), CallEnded(C, at(29), "callback_requested", "")]


def row(events):
    [call] = fold(events)
    return history_row(call)


def test_a_waiting_request_is_a_missed_call_labelled_callback():
    r = row(asked())
    assert (r.status, r.label, r.employee) == ("missed", "Callback", "101")
    assert r.what_happened == "no answer; callback requested; waiting for the callback"


def test_an_answered_callback_makes_the_call_answered_by_who_called_back():
    r = row(asked() + [LegStarted(C, 3, at(240), "callback", ("101",)),
                       LegEnded(C, 3, at(252), "answered", "101", at(252)),
                       CallEnded(C, at(315), "answered", "called back by 101")])
    assert (r.status, r.label, r.employee) == ("answered", "Callback", "101")
    assert (r.waited, r.talked) == (252, 63)
    assert r.what_happened == "no answer; callback requested; called back by 101, client answered"


def test_each_attempt_and_the_end_are_lines_of_the_story():
    r = row(asked() + [LegStarted(C, 3, at(90), "callback", ("101",)), LegEnded(C, 3, at(100), "employee_busy"),
                       LegStarted(C, 4, at(200), "callback", ("101",)), LegEnded(C, 4, at(230), "client_no_answer"),
                       LegStarted(C, 5, at(3600), "callback", ("101",)), LegEnded(C, 5, at(3600), "expired")])
    assert (r.status, r.label) == ("missed", "Callback")
    assert r.what_happened == ("no answer; callback requested; callback: 101 was busy; "
                               "called back by 101, client did not answer; callback expired")


def test_an_offer_not_taken_reads_so():
    events = asked()[:4] + [LegEnded(C, 2, at(26), "no_digit"), CallEnded(C, at(30), "dropped", "busy")]
    r = row(events)
    assert (r.status, r.label) == ("missed", None)
    assert r.what_happened == "no answer; callback offered, not taken; busy tone"
