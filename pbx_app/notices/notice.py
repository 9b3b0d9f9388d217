"""What a notice is: one message about one finished call to one recipient. Made from the call
as the journal has it, by the same rules as the history (pbx_app/history/rows.py):

  - missed by an employee (dropped, forwarded and not answered, voicemail without a message)
        → a "missed" notice to that employee's e-mail
  - voicemail with a message → a "voicemail" notice, with the recording, to each of the
        mailbox's recipients (the owner and its voicemail_to), instead of a missed-call notice
  - answered, by the employee or by a colleague after a forward → nothing

With a webhook configured, each such call also gets one notice to the webhook."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ..answered import extensions
from ..history.records import CallRecord
from ..history.rows import answered_place, history_row, who_answered
from ..policy.model import Policy
from .recipients import mailbox_recipients, person_recipient

Kind = Literal["missed", "voicemail"]
WEBHOOK = "webhook"  # the recipient of a site's webhook notice; others are e-mail addresses


@dataclass(frozen=True)
class Notice:
    call_id: str
    kind: Kind
    recipient: str  # an e-mail address (lower case) or WEBHOOK
    language: str
    facts: dict  # JSON: what the message says (see facts())


def facts(call: CallRecord, policy: Policy, employee: str, mailbox: str | None) -> dict:
    """What every notice of the call says, in plain values (kept as JSON in the outbox)."""
    person = policy.employee(employee)
    return {
        "call_id": call.call_id,
        "caller": printable(call.caller, 64),
        "started_at": call.started_at.isoformat() if call.started_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "timezone": policy.site.timezone,
        "employee": employee,
        "employee_name": person.name if person else "",
        "channel_name": call.channel_name,
        "mailbox": mailbox,
        "legs": [_leg(l) for l in call.legs],
        "result": call.result,
        "detail": call.detail,
        "names": {ext: e.name for ext, e in policy.employees.items() if ext in _mentioned(call)},
        "departments": {d: dep.name for d, dep in policy.departments.items() if any(l.department == d for l in call.legs)},
    }


def notices_for(call: CallRecord, policy: Policy, webhook: bool) -> list[Notice]:
    """The notices one finished call gives; none for a call still in progress or answered."""
    row = history_row(call)
    if row.status != "missed":
        return []
    voicemail = next((l for l in call.legs if l.role == "voicemail" and l.outcome == "message_left"), None)
    if voicemail is not None:
        owner = voicemail.targets[0] if voicemail.targets else row.employee
        person = policy.employee(owner)
        mailbox = (person.mailbox if person else None) or f"{owner}@default"
        about = facts(call, policy, owner, mailbox)
        out = [Notice(call.call_id, "voicemail", address, language, about)
               for address, language in mailbox_recipients(policy, owner)]
        kind: Kind = "voicemail"
    else:
        about = facts(call, policy, row.employee, None)
        out = [Notice(call.call_id, "missed", address, language, about)
               for address, language in person_recipient(policy, row.employee)]
        kind = "missed"
    if webhook:
        out.append(Notice(call.call_id, kind, WEBHOOK, policy.site.language, about))
    return out


def printable(text: str, most: int) -> str:
    """Caller ids come from the network: no control characters (a line break would be a header
    injection in a mail), and bounded."""
    return "".join(ch for ch in text if ch.isprintable())[:most]


def _leg(leg) -> dict:
    return {"leg": leg.leg, "role": leg.role, "targets": list(leg.targets), "department": leg.department,
            "outcome": leg.outcome, "answered_by": who_answered(leg) if leg.outcome == "answered" else None,
            "answered_at": _iso(leg.answered_at),
            **({"answered_on": answered_place(leg)} if leg.outcome == "answered" and answered_place(leg) else {})}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _mentioned(call: CallRecord) -> set[str]:
    return {call.extension, *(t for l in call.legs for t in extensions(l.targets)),
            *extensions(l.answered_by or "" for l in call.legs)}
