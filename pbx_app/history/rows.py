"""The call history as a manager reads it: one row per call, counted for one employee. Pure:
the same calls give the same rows.

The rules (whom a call counts for, and whether it was missed):
  - answered by the employee the client dialled      → a call to that employee, answered
  - no answer (or busy, unreachable) and dropped     → missed by that employee
  - the caller hung up while the employee's phone rang → missed by that employee
  - forwarded to a colleague or a department:
      answered by someone there                      → a call to the one who answered (the row
                                                       says whom it was forwarded from)
      not answered (or the caller hung up meanwhile) → missed by the employee dialled
  - forwarded to voicemail: no message left          → a plain missed call of the employee
                            message left             → missed by the employee, labelled "Voicemail"
  - the app failed and gave busy                     → missed by the employee
  - a callback requested (the client pressed 1)      → missed, labelled "Callback", until the
                                                       callback is answered: then a call to the
                                                       employee who called back, answered
  - not ended yet (or its end is not in the journal) → "in progress"; answered if someone did
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Callable, Iterable, Literal

from ..answered import extensions, where_answered
from .outside_dropped import read_dropped
from .records import LOST_WITH_NODE, WHILE_DOWN, CallRecord, LegRecord

Status = Literal["answered", "missed", "in progress"]
VOICEMAIL = "Voicemail"
CALLBACK = "Callback"
MOBILE = "mobile"  # routing/plan.py's label of an employee's own mobile

_PEER = re.compile(r"^[A-Za-z]+/(?P<ext>[^-/]+)-[0-9a-f]+$")  # PJSIP/102-0000001a


@dataclass(frozen=True)
class Step:
    """One thing that happened to a call, in words. ``text`` is an English phrase with {names}
    and the message id of its translations (pbx_app/locale): the page says it in the reader's
    language, `pbx-app history` in English."""

    text: str
    values: tuple[tuple[str, str], ...] = ()
    at: datetime | None = None  # when the leg it tells of began

    def say(self, gettext: Callable[[str], str] = str) -> str:
        return gettext(self.text).format(**dict(self.values))


def _why(outcome: str | None) -> Step:
    return {
        "no_answer": Step("no answer"),
        "busy": Step("busy"),
        "unreachable": Step("unreachable"),
        "caller_hung_up": Step("caller hung up while ringing"),
        "not_known": Step("what happened is not known"),
    }.get(outcome or "", Step("ringing"))


def _not_answered(where: str, outcome: str, place: str = "") -> Step:
    """``place``: the leg rang only outside the PBX: "mobile" (``where`` the employee whose) or
    the number itself."""
    if place == MOBILE:
        values = (("who", where),)
        return {
            "no_answer": Step("forwarded to the mobile of {who}, not answered (no answer)", values),
            "busy": Step("forwarded to the mobile of {who}, not answered (busy)", values),
            "unreachable": Step("forwarded to the mobile of {who}, not answered (unreachable)", values),
        }.get(outcome, Step("forwarded to the mobile of {who}, not answered ({why})", (*values, ("why", outcome))))
    if place:
        values = (("number", place),)
        return {
            "no_answer": Step("forwarded to {number}, not answered (no answer)", values),
            "busy": Step("forwarded to {number}, not answered (busy)", values),
            "unreachable": Step("forwarded to {number}, not answered (unreachable)", values),
        }.get(outcome, Step("forwarded to {number}, not answered ({why})", (*values, ("why", outcome))))
    values = (("where", where),)
    return {
        "no_answer": Step("forwarded to {where}, not answered (no answer)", values),
        "busy": Step("forwarded to {where}, not answered (busy)", values),
        "unreachable": Step("forwarded to {where}, not answered (unreachable)", values),
    }.get(outcome, Step("forwarded to {where}, not answered ({why})", (*values, ("why", outcome))))


@dataclass(frozen=True)
class HistoryRow:
    call_id: str
    started_at: datetime | None
    caller: str
    employee: str  # whom the call counts for: the one who answered, else the employee dialled
    status: Status
    label: str | None  # "Voicemail" when the caller left a message
    dialled: str  # the employee the client dialled
    forwarded_from: str | None  # answered after a forward: the employee the client dialled
    department: str | None  # answered through this department's ring group
    answered_at: datetime | None
    ended_at: datetime | None
    what_happened: str  # in words, leg by leg: "no answer; forwarded to 102, not answered"
    steps: tuple[Step, ...] = ()  # the same, one step each, for saying it in another language

    @property
    def missed(self) -> bool:
        return self.status == "missed"

    @property
    def waited(self) -> float | None:
        """Seconds the client waited: until someone answered, or until the call ended."""
        until = self.answered_at or self.ended_at
        if self.started_at is None or until is None:
            return None
        return max(0.0, (until - self.started_at).total_seconds())

    @property
    def talked(self) -> float | None:
        if self.answered_at is None or self.ended_at is None:
            return None
        return max(0.0, (self.ended_at - self.answered_at).total_seconds())


def who_answered(leg: LegRecord) -> str:
    """The extension that picked up; a resumed call may only know the peer channel, or nothing."""
    by = where_answered(leg.answered_by or "")[0]
    rung = extensions(leg.targets)
    if by in rung:
        return by
    m = _PEER.match(by)
    if m and m.group("ext") in rung:
        return m.group("ext")
    if len(rung) == 1:
        return rung[0]
    return by or "?"


def outside_only(leg: LegRecord) -> str:
    """Where the leg rang when that was only outside the PBX: "mobile" or the number; else ""."""
    places = {where_answered(t)[1] for t in leg.targets}
    return places.pop() if len(places) == 1 and "" not in places else ""


def answered_place(leg: LegRecord) -> str:
    """Where it was answered when not on a desk phone: "mobile" or an outside number; else ""."""
    return where_answered(leg.answered_by or "")[1]


def _answered(leg: LegRecord) -> Step:
    place = answered_place(leg)
    if place == MOBILE:
        return Step("answered on mobile", at=leg.started_at)
    if place:
        return Step("answered on {number}", (("number", place),), leg.started_at)
    return Step("answered", at=leg.started_at)


def _ring_legs(call: CallRecord) -> list[LegRecord]:
    return [l for l in call.legs if l.role in ("employee", "forward")]


_OFFER = {
    "callback_requested": Step("callback requested"),
    "declined": Step("callback offered, not taken"),
    "no_digit": Step("callback offered, not taken"),
    "caller_hung_up": Step("caller hung up during the callback offer"),
    "failed": Step("callback requested but not stored"),
    "hidden_number": Step("no callback offer: the number is hidden"),
    "number_not_allowed": Step("no callback offer: the number is not allowed"),
    "over_limit": Step("no callback: too many calls out this hour"),
    "not_checked": Step("no callback offer: the calls out could not be counted"),
    "already_requested": Step("callback requested (one was already waiting)"),
}


def _callback(leg: LegRecord) -> Step:
    """One callback attempt (or the request's end), as a line of the call's story."""
    who = (("who", leg.targets[0] if leg.targets else "?"),)
    return {
        "answered": Step("called back by {who}, client answered", who),
        "employee_no_answer": Step("callback: {who} did not answer", who),
        "employee_busy": Step("callback: {who} was busy", who),
        "employee_unreachable": Step("callback: {who} unreachable", who),
        "employee_declined": Step("callback: {who} did not press 1", who),
        "client_no_answer": Step("called back by {who}, client did not answer", who),
        "client_busy": Step("called back by {who}, client busy", who),
        "client_unreachable": Step("called back by {who}, client unreachable", who),
        "expired": Step("callback expired"),
        "failed": Step("callback interrupted (its engine went away)"),
        "refused": Step("callback not made: the number is not allowed"),
        "postponed": Step("callback postponed: too many calls out this hour"),
    }.get(leg.outcome or "", Step("calling back ({who})", who))


def steps(call: CallRecord) -> list[Step]:
    """What happened, leg by leg."""
    parts: list[Step] = []
    for leg in call.legs:
        at = leg.started_at
        if leg.role == "employee":
            parts.append(_answered(leg) if leg.outcome == "answered" else replace(_why(leg.outcome), at=at))
        elif leg.role == "forward":
            where = (("where", leg.department or "+".join(extensions(leg.targets))),)
            place = answered_place(leg)
            if leg.outcome == "answered" and place == MOBILE:
                parts.append(Step("forwarded to the mobile of {who}, answered", (("who", who_answered(leg)),), at))
            elif leg.outcome == "answered" and place:
                parts.append(Step("forwarded to {number}, answered", (("number", place),), at))
            elif leg.outcome == "answered":
                parts.append(Step("forwarded to {where}, answered by {who}", (*where, ("who", who_answered(leg))), at))
            elif leg.outcome == "caller_hung_up":
                parts.append(Step("forwarded to {where}, caller hung up while it rang", where, at))
            elif leg.outcome == "not_known":
                parts.append(Step("forwarded to {where}, what happened is not known", where, at))
            elif leg.outcome is None:
                parts.append(Step("forwarded to {where}, ringing", where, at))
            else:
                parts.append(replace(_not_answered(where[0][1], leg.outcome, outside_only(leg)), at=at))
        elif leg.role == "voicemail":
            parts.append(replace({"message_left": Step("voicemail, message left"), "no_message": Step("voicemail, no message")}.get(
                leg.outcome or "", Step("in voicemail")), at=at))
        elif leg.role == "announcement" and leg.outcome is None and call.result == "caller_hung_up":
            parts.append(Step("caller hung up during the announcement", at=at))
        elif leg.role == "drop_message":
            parts.append(Step("message played, then hung up", at=at))
        elif leg.role == "callback_offer":
            parts.append(replace(_OFFER.get(leg.outcome or "", Step("callback offered")), at=at))
        elif leg.role == "callback":
            parts.append(replace(_callback(leg), at=at))
    if call.result == "callback_requested" and not any(l.role == "callback" for l in call.legs):
        parts.append(Step("waiting for the callback"))
    if call.legs and not any(l.role == "employee" for l in call.legs):
        parts.insert(0, Step("not rung", at=call.started_at))  # away, or a rule sent the call elsewhere at once
    # The outbound guard left an outside leg out at the call: why the mobile stayed silent.
    parts[0:0] = [_left_out(number, why, call.started_at)
                  for number, _, why in filter(None, (read_dropped(r) for r in call.reasons))]
    if WHILE_DOWN in call.detail:
        by_dialplan = "by the dialplan" in call.detail
        parts.append(Step("carried on by the dialplan while the app was down") if by_dialplan else Step("while the app was down"))
    elif call.result == "failed" and call.detail.startswith(LOST_WITH_NODE):
        parts.append(Step("lost with node {node}", (("node", call.detail[len(LOST_WITH_NODE):]),), call.ended_at))
    elif call.result == "failed":
        parts.append(Step("internal error, busy given", at=call.ended_at))
    elif call.result == "dropped" and call.detail == "busy":
        parts.append(Step("busy tone", at=call.ended_at))
    return parts


def _left_out(number: str, why: str, at: datetime | None) -> Step:
    if "limit" in why:
        return Step("{number} not rung: the hour's limit of calls out is reached", (("number", number),), at)
    return Step("{number} not rung: {why}", (("number", number), ("why", why)), at)


def describe(said: Iterable[Step], gettext: Callable[[str], str] = str) -> str:
    return "; ".join(step.say(gettext) for step in said)


def history_row(call: CallRecord) -> HistoryRow:
    said = steps(call)
    answered = next((l for l in _ring_legs(call) if l.outcome == "answered"), None)
    voicemail = next((l for l in call.legs if l.role == "voicemail"), None)
    called_back = next((l for l in call.legs if l.role == "callback" and l.outcome == "answered"), None)
    requested = any(l.role == "callback_offer" and l.outcome in ("callback_requested", "already_requested")
                    for l in call.legs)
    status: Status
    employee, label, forwarded_from, department = call.extension, None, None, None
    if answered is None and called_back is not None:
        status, label, answered = "answered", CALLBACK, called_back
        employee = who_answered(called_back)
    elif answered is None and requested:
        status, label = "missed", CALLBACK
    elif answered is not None:
        status = "answered"
        if answered.role == "forward":
            employee = who_answered(answered)
            forwarded_from = call.extension
            department = answered.department
    elif voicemail is not None and voicemail.outcome == "message_left":
        status, label = "missed", VOICEMAIL
    elif call.result is None:
        status = "in progress"
    else:
        status = "missed"
    return HistoryRow(
        call_id=call.call_id,
        started_at=call.started_at,
        caller=call.caller,
        employee=employee,
        status=status,
        label=label,
        dialled=call.extension,
        forwarded_from=forwarded_from,
        department=department,
        answered_at=answered.answered_at if answered is not None else None,
        ended_at=call.ended_at,
        what_happened=describe(said),
        steps=tuple(said),
    )


def history(calls: Iterable[CallRecord]) -> list[HistoryRow]:
    """One row per call, oldest first."""
    rows = [history_row(c) for c in calls]
    return sorted(rows, key=lambda r: (r.started_at is None, r.started_at.timestamp() if r.started_at else 0, r.call_id))
