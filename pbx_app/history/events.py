"""What the call flow tells the journal. Append-only facts; history is derived from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, Union

LegRole = Literal["employee", "forward", "voicemail", "announcement", "drop_message", "callback_offer", "callback"]
LegOutcome = Literal[
    "answered",  # a person picked up
    "no_answer",
    "busy",
    "unreachable",
    "caller_hung_up",  # the caller left while this leg was going on
    "not_known",  # ended while no engine watched, and no CDR tells how
    "played",  # an announcement or drop message played to its end
    "message_left",  # voicemail: a message was recorded
    "no_message",  # voicemail: reached, nothing recorded
    # callback_offer (the caller was answered to collect a digit):
    "callback_requested", "declined", "no_digit", "failed",
    # … or not offered (or not stored) by the outbound guard, or a second one for a waiting number
    "hidden_number", "number_not_allowed", "over_limit", "not_checked", "already_requested",
    # callback (one attempt, or the request's end): the employee answered and the client too is
    # "answered"; the rest say who did not
    "employee_no_answer", "employee_busy", "employee_unreachable", "employee_declined",
    "client_no_answer", "client_busy", "client_unreachable", "expired",
    "refused", "postponed",  # the outbound guard: the number is not allowed any more / over a limit for now
]
CallResult = Literal["answered", "dropped", "voicemail", "caller_hung_up", "failed", "callback_requested"]


@dataclass(frozen=True)
class CallStarted:
    call_id: str
    at: datetime
    caller: str
    extension: str  # the employee the client dialled
    channel_id: str
    reasons: tuple[str, ...] = ()  # why the plan is what it is (which rule won)
    channel_name: str = ""  # e.g. PJSIP/client-en-00000012: the CDR's channel column


@dataclass(frozen=True)
class LegStarted:
    call_id: str
    leg: int  # 1, 2, … in the order the legs started
    at: datetime
    role: LegRole
    # extensions rung (a department: its members in this step); an outside one as "101 on mobile"
    # or "101 on +7 900 …" (answered.rung)
    targets: tuple[str, ...] = ()
    department: str | None = None


@dataclass(frozen=True)
class LegEnded:
    call_id: str
    leg: int
    at: datetime
    outcome: LegOutcome
    answered_by: str | None = None  # the extension that picked up
    answered_at: datetime | None = None
    cause: str | None = None  # Asterisk's DIALSTATUS / hangup cause, for the curious


@dataclass(frozen=True)
class CallEnded:
    call_id: str
    at: datetime
    result: CallResult
    detail: str = ""


JournalEvent = Union[CallStarted, LegStarted, LegEnded, CallEnded]


class Journal(Protocol):
    """Where the flow sends facts. ``record`` never raises: a failing store must not break a call."""

    async def record(self, event: JournalEvent) -> None: ...


def message_left(before: str | None, after: str | None) -> bool:
    """Whether VoiceMail() left a message: the mailbox's count (VM_INFO) went up."""
    try:
        return int(after or 0) > int(before or 0)
    except ValueError:
        return False


@dataclass
class MemoryJournal:
    """Keeps events in a list: for tests and for running without a database."""

    events: list[JournalEvent] = field(default_factory=list)

    async def record(self, event: JournalEvent) -> None:
        self.events.append(event)
