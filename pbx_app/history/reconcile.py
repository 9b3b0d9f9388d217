"""No call stays "in progress" for ever. A call the journal has open whose channel is gone from
Asterisk, and that stays so for a grace period (time for its owner to write its end), was ended
while no engine watched it: its owner died, and the caller talked, gave up, or was carried on by
the dialplan alone. It is ended here from what Asterisk's CDR says of its legs (the dialplan's
fallback legs included, marked so in their userfield); without a CDR, from what the journal has.
Any engine may do this: the journal's writes are upserts, so two doing it at once agree.

A call whose Asterisk node was taken as lost (pbx_app/nodes.py: it has not listed its channels
for PBX_NODE_LOST_AFTER) and that left no CDR row ends as "lost with node a": its channels died
with that Asterisk, and nobody can know what the caller heard after the last journal event.

Each pass also brings in the calls no engine saw at all, which only the CDR has (unseen_calls.py)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Callable

from ..db.errors import StoreError
from .cdr import CdrLeg, CdrReader
from .events import CallEnded, CallResult, Journal, LegEnded, LegOutcome, LegStarted
from .records import LOST_WITH_NODE
from .records import CallRecord, apply
from .records import WHILE_DOWN as DOWN
from .store import Store
from .unseen_calls import UnseenCalls, started_from

log = logging.getLogger(__name__)

_OUTCOME: dict[str, LegOutcome] = {"ANSWERED": "answered", "NO ANSWER": "no_answer", "BUSY": "busy",
                                   "FAILED": "unreachable", "CONGESTION": "unreachable"}


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Reconciler:
    def __init__(self, store: Store, journal: Journal, cdr: CdrReader | None = None, grace: float = 10.0,
                 window: timedelta = timedelta(hours=12), clock: Callable[[], datetime] = _utcnow,
                 busy: Callable[[str], bool] = lambda call_id: False, unseen: UnseenCalls | None = None):
        self.store = store
        self.journal = journal
        self.cdr = cdr
        self.grace = timedelta(seconds=grace)
        self.window = window
        self.clock = clock
        self.busy = busy  # a flow of ours still has this call: not ours to end
        self.unseen = unseen  # the calls no engine saw, from the CDR
        self._gone_since: dict[str, datetime] = {}
        self.reconciled = 0

    async def reconcile(self, live_channels: set[str], lost_nodes: frozenset[str] = frozenset()) -> int:
        """Ends the open calls whose channel has been gone for the grace period; how many.
        ``lost_nodes``: the system names of nodes taken as lost (their channels are not listed)."""
        now = self.clock()
        try:
            open_calls = await self.store.calls(now - self.window, now, open_only=True)
        except StoreError as exc:
            log.warning("cannot look for calls left in progress: %s", exc)
            return 0
        gone_now: dict[str, datetime] = {}
        ended = 0
        for call in open_calls:
            if call.channel_id in live_channels or self.busy(call.call_id) or not call.channel_id:
                continue
            since = gone_now[call.call_id] = self._gone_since.get(call.call_id, now)
            if now - since >= self.grace:
                await self.end(call, lost_nodes)
                gone_now.pop(call.call_id)
                ended += 1
        self._gone_since = gone_now
        self.reconciled += ended
        await self.bring_in_unseen()
        return ended

    async def end(self, call: CallRecord, lost_nodes: frozenset[str] = frozenset()) -> None:
        rows = []
        if self.cdr is not None:
            try:
                rows = [r for r in await self.cdr.legs(call.channel_id) if r.call_id == call.call_id]
            except Exception as exc:  # a CDR we cannot read still ends the call, with less detail
                log.warning("call %s: cannot read its CDR (%s)", call.call_id, exc)
        result, detail = await self._end_from(call, rows, lost_nodes)
        log.warning("call %s to %s was left in progress; ended from %s: %s (%s)", call.call_id, call.extension,
                    "its CDR" if rows else "the journal", result, detail)

    async def bring_in_unseen(self) -> int:
        """Writes into the journal the calls the dialplan carried with no engine (unseen_calls.py),
        as their CDR tells; how many."""
        if self.unseen is None:
            return 0
        try:
            calls = await self.unseen.due(self.clock())
        except Exception as exc:  # a CDR we cannot read now is read at the next look
            log.warning("cannot read the CDR for calls the dialplan carried alone: %s", exc)
            return 0
        for rows in calls:
            started = started_from(rows)
            await self.journal.record(started)
            await self._end_from(apply(None, started), rows)
        if calls:
            log.warning("%d call(s) carried by the dialplan with no engine brought into history from the CDR",
                        len(calls))
        return len(calls)

    async def _end_from(self, call: CallRecord, rows: list[CdrLeg],
                        lost_nodes: frozenset[str] = frozenset()) -> tuple[CallResult, str]:
        known = {leg.leg: leg for leg in call.legs}
        for row in rows:
            leg = known.get(row.leg)
            if leg is None or leg.role is None:
                await self.journal.record(LegStarted(call.call_id, row.leg, row.start or self.clock(), row.role,  # type: ignore[arg-type]
                                                     tuple(row.who.split("+")), None))
            if leg is None or leg.outcome is None:
                await self.journal.record(self._leg_end(row))
        by_leg = {row.leg: row for row in rows}
        node = node_of(call.channel_id)
        lost = f"{LOST_WITH_NODE}{node}" if not rows and node in lost_nodes else None
        for leg in call.legs:  # legs the CDR says nothing of (an announcement, no CDR at all)
            if leg.outcome is None and leg.leg not in by_leg:
                await self.journal.record(LegEnded(call.call_id, leg.leg, self.clock(), _untold(leg.role, bool(rows)),
                                                   cause=lost or DOWN))
        result, detail = self._result(call, rows)
        if lost:
            result, detail = "failed", lost
        await self.journal.record(CallEnded(call.call_id, rows[-1].end if rows and rows[-1].end else self.clock(),
                                            result, detail))
        return result, detail

    def _leg_end(self, row: CdrLeg) -> LegEnded:
        if row.lastapp.lower() == "voicemail":
            outcome: LegOutcome = "no_message" if row.disposition == "ANSWERED" else "caller_hung_up"
            return LegEnded(row.call_id, row.leg, row.end or self.clock(), outcome, cause=f"{DOWN}; message not known")
        outcome = _OUTCOME.get(row.disposition, "unreachable")
        answered_by = _who_answered(row) if outcome == "answered" else None
        cause = f"{row.disposition} (dialplan fallback)" if row.fallback else row.disposition
        return LegEnded(row.call_id, row.leg, row.end or self.clock(), outcome, answered_by, row.answer, cause)

    @staticmethod
    def _result(call: CallRecord, rows: list[CdrLeg]) -> tuple[CallResult, str]:
        if not rows:
            return "failed", f"ended {DOWN}; what happened is not known"
        last = rows[-1]
        fallback = " by the dialplan" if any(r.fallback for r in rows) else ""
        if any(r.disposition == "ANSWERED" and r.lastapp.lower() == "dial" for r in rows):
            who = next(_who_answered(r) for r in rows if r.disposition == "ANSWERED" and r.lastapp.lower() == "dial")
            return "answered", f"answered by {who}{fallback} {DOWN}"
        if last.lastapp.lower() == "voicemail":
            return "voicemail", f"voicemail{fallback} {DOWN}"
        return "dropped", f"not answered ({last.disposition.lower()}){fallback} {DOWN}"


def node_of(channel_id: str) -> str:
    """The Asterisk node a channel lives on: its uniqueid starts with the node's system name
    (``systemname = a`` gives ``a-1733…``); one without a name has none."""
    return channel_id.split("-", 1)[0] if "-" in channel_id else ""


def _untold(role: str | None, cdr_has_the_call: bool) -> LegOutcome:
    """A leg with no CDR row of its own. When the CDR has the call's later legs, this one was over
    before them (an announcement played, a ring the caller left); with no row at all nothing
    knows, and guessing "caller hung up" would tell a wrong story."""
    if not cdr_has_the_call:
        return "not_known"
    return "played" if role == "announcement" else "caller_hung_up"


def _who_answered(row: CdrLeg) -> str:
    """The extension that picked up: the leg's one target, or a group member's endpoint name."""
    targets = row.who.split("+")
    if len(targets) == 1:
        return targets[0]
    peer = row.dstchannel.split("/", 1)[-1].rsplit("-", 1)[0]
    return peer if peer in targets else targets[0]
