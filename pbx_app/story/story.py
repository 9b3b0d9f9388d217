"""One direct call's story, whatever the transport: the dialplan does each step (Dial(),
Playback() as early media, VoiceMail(), Read() for a callback offer, the hangup) and reports how
it went; the story writes the journal and says what the dialplan does next.

It keeps nothing between reports but the plan and the cursor, both of which travel on the
caller's channel: any engine or FastAGI server can build the story again from them and take the
next report. The ARI engine (calls/flow.py) and the FastAGI server (agi/server.py) only carry
instructions out and reports in; neither decides anything, so both write the same journal.

The inputs:
  start()        a new call: journal it, the first step
  next(report)   the step in progress is over and the caller is still there
  hangup(report) the caller hung up during the step in progress (or the dialplan ended the call)
  fail()         something broke: busy for the caller, the journal says so
An announcement is a step of its own; ``Instruction.then`` previews the step after it, so a
dialplan that plays an announcement and rings in one go (ARI mode's pbx-dial) can be sent both
at once and report the announcement with ``next`` while the ring goes on."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Callable

from ..answered import rung
from ..callback.offer import Requests, answer_offer
from ..history.events import (CallEnded, CallResult, CallStarted, Journal, LegEnded, LegOutcome, LegRole, LegStarted,
                              message_left)
from ..routing import Announce, Drop, Outcome, Plan, Ring, Step, Voicemail
from ..routing.plan import Offer, branch_name
from ..sounds import playback_name
from .cursor import Cursor

log = logging.getLogger(__name__)

ENDED = "end"  # the state of a call whose journal is closed


@dataclass(frozen=True)
class Report:
    """How the step the dialplan just did went (an empty field: not known or not reached)."""

    dialstatus: str = ""
    hangupcause: str = ""
    peer: str = ""  # DIALEDPEERNAME: the channel that answered
    answered_ms: str = ""  # ANSWEREDTIME_MS: how long the answered leg lasted
    playback: str = ""  # PLAYBACKSTATUS of an announcement or the drop message
    vmstatus: str = ""
    vm_before: str = ""  # messages in the mailbox before and after VoiceMail()
    vm_after: str = ""
    digit: str = ""  # the key pressed at a callback offer


@dataclass
class Instruction:
    """What the dialplan does next. ``do``: ring | announce | voicemail | offer | message
    (the drop message, then hang up) | callback (the request is stored: confirm, hang up) |
    busy | hangup. The transports spell the fields as channel variables (contract.py)."""

    do: str
    to: str = ""  # the extension the step runs under: the CDR's dst (who is rung, the mailbox's owner)
    dial: str = ""  # Dial() string, '&' between the members of a group
    ringtime: int = 0
    leg: str = ""  # the CDR userfield of the step's leg: callid:leg:role:who[:answered]
    sound: str = ""  # Playback() name: the announcement, the drop message or the offer
    answer_first: bool = False
    mailbox: str = ""
    offer_timeout: int = 0
    whisper: str = ""  # ring: the callee first hears "forwarded call for" these digits ("" none)
    cdr_off: bool = False  # set CDR_PROP(disable) first: no CDR row for what is left
    cursor: str = ""  # where the story stands while this step runs (Cursor.encode(); ENDED)
    then: "Instruction | None" = field(default=None, repr=False)  # announce: the step after it

    @property
    def final(self) -> bool:
        """The call's journal is closed: nothing more is reported back."""
        return self.cursor == ENDED


class CallStory:
    def __init__(self, plan: Plan, call_id: str, journal: Journal, clock: Callable[[], datetime],
                 cursor: Cursor | None = None, *, callbacks: Requests | None = None, caller: str = ""):
        self.plan = plan
        self.call_id = call_id  # the caller's uniqueid: the CDR's linkedid and every leg's userfield agree on it
        self.journal = journal
        self.clock = clock
        self.cursor = cursor or Cursor("first", 0, 0)
        self.callbacks = callbacks  # where callback requests go; None: no offers (their fallback runs)
        self.caller = caller  # the client's number: whom a callback calls
        self.result: CallResult | None = None

    @property
    def ended(self) -> bool:
        return self.result is not None

    @property
    def state(self) -> str:
        return ENDED if self.ended else self.cursor.encode()

    # ---- the inputs ---------------------------------------------------------------------------------

    async def start(self, channel_id: str, channel_name: str, at: datetime | None = None,
                    refuse: bool = False) -> Instruction:
        """A new call (``at``: when the channel was made, if known; ``refuse``: busy at once, the
        call cannot be carried out — its plan does not fit on the channel)."""
        await self.journal.record(CallStarted(self.call_id, at or self.clock(), self.caller, self.plan.extension,
                                              channel_id, self.plan.reasons, channel_name=channel_name))
        if refuse:
            return await self.fail()
        if self.plan.first is not None:
            return await self._ring(self.plan.first)
        return await self.carry_out("no_answer", 0)

    async def restate(self, channel_id: str, channel_name: str, at: datetime | None = None) -> None:
        """Taken over from an engine that died: what it wrote may still sit in its own spool,
        unshipped, so the call's start and the step in progress are written again (the same
        events: history folds them into the same row)."""
        await self.journal.record(CallStarted(self.call_id, at or self.clock(), self.caller, self.plan.extension,
                                              channel_id, self.plan.reasons, channel_name=channel_name))
        step, cursor = self.pending(), self.cursor
        if isinstance(step, Ring):
            await self.journal.record(LegStarted(self.call_id, cursor.leg, self.clock(), step.role,
                                                 tuple(rung(t) for t in step.targets), step.department))
            before = self.steps(cursor.branch)[cursor.index - 1] if cursor.index > 0 else None
            if isinstance(before, Announce):  # the ring came after it: it was played
                await self.end_leg(cursor.leg - 1, "played", cause=before.sound)
        elif isinstance(step, Offer):
            await self.journal.record(LegStarted(self.call_id, cursor.leg, self.clock(), "callback_offer",
                                                 (step.extension,)))

    async def next(self, report: Report) -> Instruction:
        """The step in progress is over and the caller is still there: record it, the next step."""
        step = self.pending()
        cursor = self.cursor
        if isinstance(step, Ring):
            outcome, answered_by = self._ring_result(report, step)
            await self.end_leg(cursor.leg, outcome.value, answered_by, self._answered_at(report, outcome),  # type: ignore[arg-type]
                               cause=None if outcome is Outcome.ANSWERED else f"{report.dialstatus},{report.hangupcause}")
            if outcome is Outcome.ANSWERED:
                # The callee hung up first; the caller is back only to be hung up.
                await self.end("answered", f"answered by {answered_by}")
                return self.finish("hangup", cdr_off=True)
            if outcome is Outcome.CALLER_HUNG_UP:
                await self.end("caller_hung_up", "the caller hung up")
                return self.finish("hangup")
            if cursor.branch == "first":
                return await self.carry_out(branch_name(outcome), 0)
            return await self.carry_out(cursor.branch, cursor.index + 1)
        if isinstance(step, (Announce, Drop)):
            await self.end_leg(cursor.leg, "played" if report.playback == "SUCCESS" else "unreachable",
                               cause=step.sound or "")
            if isinstance(step, Drop):
                await self.end("dropped", "message, then hangup")
                return self.finish("hangup")
            return await self.carry_out(cursor.branch, cursor.index + 1)
        if isinstance(step, Offer):
            if await self._offer_taken(step, report.digit):
                return self.finish("callback")
            return await self.carry_out(cursor.branch, cursor.index + 1)
        if isinstance(step, Voicemail):
            await self._voicemail_over(report)
            return self.finish("hangup")
        raise ValueError(f"call {self.call_id}: no step at {cursor.encode()}")

    async def hangup(self, report: Report) -> None:
        """The caller hung up during the step in progress (or the dialplan ended the call after
        it: a voicemail, the drop message)."""
        if self.ended:
            return
        step = self.pending()
        leg = self.cursor.leg
        if isinstance(step, Ring):
            answered_by = step.answered_by(report.peer) if report.dialstatus == "ANSWER" else None
            if answered_by is not None:
                # They talked, and one of them hung up: the call is over and it was answered.
                await self.end_leg(leg, "answered", answered_by, self._answered_at(report, Outcome.ANSWERED))
                return await self.end("answered", f"answered by {answered_by}")
            await self.end_leg(leg, "caller_hung_up")
        elif isinstance(step, Offer):
            await self.end_leg(leg, "caller_hung_up", cause="answered for the offer")
        elif isinstance(step, Voicemail):
            # Hanging up is how a caller ends a message; the h extension counted the box again.
            return await self._voicemail_over(report)
        elif isinstance(step, Announce):
            await self.end_leg(leg, "caller_hung_up", cause=step.sound)
        elif isinstance(step, Drop) and step.kind == "message" and step.sound:
            await self.end_leg(leg, "caller_hung_up", cause=step.sound)
            return await self.end("dropped", "message, then hangup")
        await self.end("caller_hung_up", "the caller hung up")

    async def fail(self) -> Instruction:
        await self.end("failed", "internal error, busy given")
        return self.finish("busy", cdr_off=self.cursor.dialled)

    # ---- the steps ----------------------------------------------------------------------------------

    async def carry_out(self, branch: str, start: int) -> Instruction:
        """The branch's step at ``start``; steps that need no dialplan (an offer not made) are
        passed over."""
        steps = self.steps(branch)
        self.cursor = Cursor(branch, start, self.cursor.leg, self.cursor.dialled)
        if start >= len(steps):
            # A branch always ends in a drop or voicemail; this is a plan we did not expect.
            return await self._drop(Drop(kind="busy"))
        step = steps[start]
        if isinstance(step, Offer):
            if self.callbacks is None:
                log.info("call %s: no callback offer (no request store)", self.call_id)
                return await self.carry_out(branch, start + 1)  # the offer's fallback runs
            verdict = await self.callbacks.vet(self.caller, step.extension, self.call_id)
            leg = await self.start_leg("callback_offer", (step.extension,))
            if not verdict.allowed:  # the caller gets the action's fallback at once
                await self.end_leg(leg, verdict.leg_outcome, cause=verdict.why)  # type: ignore[arg-type]
                return await self.carry_out(branch, start + 1)
            return self._instruction("offer", to=step.extension, sound=playback_name(step.sound),
                                     leg=f"{self.call_id}:{leg}:callback_offer:{step.extension}:answered",
                                     offer_timeout=step.digit_timeout)
        if isinstance(step, Ring):
            return await self._ring(step)
        if isinstance(step, Announce):
            await self.start_leg("announcement")
            return replace(self._instruction("announce", sound=playback_name(step.sound), answer_first=step.answer_first),
                           then=self._after_announcement(steps, start + 1))
        if isinstance(step, Voicemail):
            leg = await self.start_leg("voicemail", (step.extension,))
            return self._voicemail(step, leg)
        return await self._drop(step)

    async def _ring(self, step: Ring) -> Instruction:
        leg = await self.start_leg(step.role, tuple(rung(t) for t in step.targets), step.department)
        self.cursor.dialled = True
        return self._ring_instruction(step, leg)

    def _ring_instruction(self, step: Ring, leg: int) -> Instruction:
        who = "+".join(t.extension for t in step.targets)
        return self._instruction("ring", to=step.department or step.targets[0].extension,
                                 dial="&".join(t.endpoint for t in step.targets), ringtime=step.timeout,
                                 leg=f"{self.call_id}:{leg}:{step.role}:{who}", whisper=step.whisper)

    def _voicemail(self, step: Voicemail, leg: int) -> Instruction:
        return self._instruction("voicemail", to=step.extension, mailbox=step.mailbox,
                                 leg=f"{self.call_id}:{leg}:voicemail:{step.extension}")

    def _after_announcement(self, steps: tuple[Step, ...], index: int) -> Instruction | None:
        """The step that follows an announcement, as ``next`` will hand it out once the
        announcement is reported played (nothing is journalled here)."""
        step = steps[index] if index < len(steps) else None
        cursor = Cursor(self.cursor.branch, index, self.cursor.leg + 1, self.cursor.dialled)
        if isinstance(step, Ring):
            return replace(self._ring_instruction(step, cursor.leg), cursor=replace(cursor, dialled=True).encode())
        if isinstance(step, Voicemail):
            return replace(self._voicemail(step, cursor.leg), cursor=cursor.encode())
        return None

    async def _drop(self, step: Drop) -> Instruction:
        # After a Dial() the caller is here only to be ended: no CDR row for that. A call that
        # never dialled keeps its one row.
        if step.kind == "message" and step.sound:
            await self.start_leg("drop_message")
            return self._instruction("message", sound=playback_name(step.sound), cdr_off=self.cursor.dialled)
        await self.end("dropped", "busy")
        return self.finish("busy", cdr_off=self.cursor.dialled)

    async def _offer_taken(self, step: Offer, digit: str) -> bool:
        """The client answered the offer with ``digit``. True: they pressed 1 and the request is
        stored (the call ends); False: the plan goes on with the offer's fallback."""
        assert self.callbacks is not None  # no store: no offer was made
        leg = self.cursor.leg
        answer = await answer_offer(self.callbacks, step, digit, self.caller, self.call_id, leg, self.clock(),
                                    busy=self.cursor.branch == "busy")
        await self.end_leg(leg, answer.outcome, cause=answer.cause)  # type: ignore[arg-type]
        if answer.request is None:
            return False
        await self.end("callback_requested", f"callback requested: {step.extension} calls {answer.request.client} back")
        return True

    async def _voicemail_over(self, report: Report) -> None:
        if not report.vm_before:  # the caller left before the mailbox answered
            await self.end_leg(self.cursor.leg, "caller_hung_up")
            return await self.end("caller_hung_up", "the caller hung up")
        left = message_left(report.vm_before, report.vm_after)
        await self.end_leg(self.cursor.leg, "message_left" if left else "no_message")
        await self.end("voicemail", "message left" if left else "no message left")

    def _instruction(self, do: str, **fields) -> Instruction:
        return Instruction(do, cursor=self.state, **fields)

    def finish(self, do: str, cdr_off: bool = False) -> Instruction:
        return Instruction(do, cdr_off=cdr_off, cursor=ENDED)

    # ---- bookkeeping ------------------------------------------------------------------------------

    def steps(self, branch: str) -> tuple[Step, ...]:
        if branch == "first":
            return (self.plan.first,) if self.plan.first else ()
        return {"no_answer": self.plan.on_no_answer, "busy": self.plan.on_busy, "unreachable": self.plan.on_unreachable}[
            branch
        ]

    def pending(self) -> Step | None:
        steps = self.steps(self.cursor.branch)
        return steps[self.cursor.index] if self.cursor.index < len(steps) else None

    @staticmethod
    def _ring_result(report: Report, step: Ring) -> tuple[Outcome, str | None]:
        outcome = Outcome.from_dialstatus(report.dialstatus)
        if outcome is not Outcome.ANSWERED:
            return outcome, None
        answered = step.answered_by(report.peer)
        if answered is None:
            answered = step.targets[0].extension if len(step.targets) == 1 else "?"
        return outcome, answered

    def _answered_at(self, report: Report, outcome: Outcome) -> datetime | None:
        """Dial() tells how long the answered leg lasted; it ended just now."""
        if outcome is not Outcome.ANSWERED:
            return None
        try:
            return self.clock() - timedelta(milliseconds=int(report.answered_ms))
        except ValueError:
            return None

    async def start_leg(self, role: LegRole, targets: tuple[str, ...] = (), department: str | None = None) -> int:
        self.cursor.leg += 1
        await self.journal.record(LegStarted(self.call_id, self.cursor.leg, self.clock(), role, targets, department))
        return self.cursor.leg

    async def end_leg(self, leg: int, outcome: LegOutcome, answered_by=None, answered_at=None, cause=None) -> None:
        await self.journal.record(LegEnded(self.call_id, leg, self.clock(), outcome, answered_by, answered_at, cause))

    async def end(self, result: CallResult, detail: str = "") -> None:
        if self.result is not None:
            return
        self.result = result
        await self.journal.record(CallEnded(self.call_id, self.clock(), result, detail))
        log.info("call %s from %s to %s: %s (%s)", self.call_id, self.caller, self.plan.extension, result, detail)
