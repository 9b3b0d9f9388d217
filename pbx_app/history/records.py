"""A call as the journal knows it: the call and its legs, folded from the events. The database
keeps the same shape (tables calls and legs), applying events the same way: a later fact about
a field wins, a missing one never erases what is known, so replaying an event twice changes
nothing."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Iterable

from .events import CallEnded, CallStarted, JournalEvent, LegEnded, LegStarted


# In a call's detail: it was ended from Asterisk's CDR by an engine that found it left open.
WHILE_DOWN = "while the app was down"
LOST_WITH_NODE = "lost with node "  # + the node's system name: its Asterisk died with the call


@dataclass(frozen=True)
class LegRecord:
    leg: int
    role: str | None = None  # employee, forward, voicemail, announcement, drop_message
    targets: tuple[str, ...] = ()
    department: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None  # None: the leg has not ended (yet)
    answered_by: str | None = None
    answered_at: datetime | None = None
    cause: str | None = None


@dataclass(frozen=True)
class CallRecord:
    call_id: str
    started_at: datetime | None = None
    caller: str = ""
    extension: str = ""  # the employee the client dialled
    channel_id: str = ""  # the caller's channel: its uniqueid is the CDR linkedid of every leg
    channel_name: str = ""
    reasons: tuple[str, ...] = ()
    ended_at: datetime | None = None
    result: str | None = None  # None: the call has not ended (yet)
    detail: str = ""
    legs: tuple[LegRecord, ...] = field(default=())

    def leg(self, number: int) -> LegRecord | None:
        return next((l for l in self.legs if l.leg == number), None)


def _some(new, old):
    return old if new is None else new


def apply(call: CallRecord | None, event: JournalEvent) -> CallRecord:
    """The call after one more event (``call`` None: the first event we see for it)."""
    call = call or CallRecord(event.call_id)
    if isinstance(event, CallStarted):
        return replace(
            call,
            started_at=event.at,
            caller=event.caller,
            extension=event.extension,
            channel_id=event.channel_id,
            channel_name=getattr(event, "channel_name", "") or call.channel_name,
            reasons=tuple(event.reasons),
        )
    if isinstance(event, CallEnded):
        return replace(call, ended_at=event.at, result=event.result, detail=event.detail)
    old = call.leg(event.leg) or LegRecord(event.leg)
    if isinstance(event, LegStarted):
        new = replace(
            old, role=event.role, targets=tuple(event.targets), department=event.department, started_at=event.at
        )
    elif isinstance(event, LegEnded):
        new = replace(
            old,
            ended_at=event.at,
            outcome=event.outcome,
            answered_by=_some(event.answered_by, old.answered_by),
            answered_at=_some(event.answered_at, old.answered_at),
            cause=_some(event.cause, old.cause),
        )
    else:  # pragma: no cover - the union is closed
        raise TypeError(f"not a journal event: {event!r}")
    legs = tuple(sorted([l for l in call.legs if l.leg != event.leg] + [new], key=lambda l: l.leg))
    return replace(call, legs=legs)


def fold(events: Iterable[JournalEvent]) -> list[CallRecord]:
    """Every call the events tell of, in the order the calls first appear."""
    calls: dict[str, CallRecord] = {}
    for event in events:
        calls[event.call_id] = apply(calls.get(event.call_id), event)
    return list(calls.values())
