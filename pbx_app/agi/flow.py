"""One direct call in FastAGI mode, one request at a time. The dialplan (dialplan/pbx_agi.conf)
does every step itself — Dial(), Playback(), VoiceMail(), the hangup — and after each one asks
us, reporting how it went; we write the journal and answer with the next step.

The journal events are exactly those of the ARI flow (pbx_app/calls/flow.py) for the same
call: the same legs, roles, outcomes, causes and results, so history and CDR rows do not
depend on the engine. Nothing is kept here between requests: the plan and the cursor travel on
the channel (state.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from ..callback.offer import Requests, answer_offer
from ..history.events import (CallEnded, CallResult, CallStarted, Journal, LegEnded, LegOutcome, LegRole, LegStarted,
                              message_left)
from ..routing import Announce, Drop, Outcome, Plan, Ring, Step, Voicemail
from ..routing.plan import Offer, branch_name
from ..sounds import playback_name
from .state import ENDED, Cursor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    """How the step the dialplan just did went: the AGI arguments after the state."""

    dialstatus: str = ""
    hangupcause: str = ""
    peer: str = ""  # DIALEDPEERNAME: the channel that answered
    answered_ms: str = ""  # ANSWEREDTIME_MS: how long the answered leg lasted
    playback: str = ""  # PLAYBACKSTATUS
    vmstatus: str = ""
    vm_before: str = ""
    vm_after: str = ""
    digit: str = ""  # PBX_DIGIT: the key pressed at a callback offer (read by the server, not an argument)

    @classmethod
    def from_args(cls, args: list[str]) -> "Report":
        return cls(*(args + [""] * 8)[:8])


@dataclass
class Instruction:
    """What the dialplan does next: ``do`` is the label it jumps to in its extension ``to``."""

    do: str  # ring | announce | voicemail | offer | callback | busy | hangup
    variables: dict[str, str] = field(default_factory=dict)
    cdr_off: bool = False  # set CDR_PROP(disable) first: no CDR row for what is left

    def channel_variables(self, state: str) -> dict[str, str]:
        return {"PBX_DO": self.do, **self.variables, "PBX_STATE": state}


class AgiFlow:
    def __init__(self, plan: Plan, call_id: str, journal: Journal, clock: Callable[[], datetime], cursor: Cursor | None = None,
                 callbacks: Requests | None = None, caller: str = ""):
        self.plan = plan
        self.callbacks = callbacks
        self.caller = caller  # the client's number (CALLERID(num)): whom a callback calls
        self.call_id = call_id
        self.journal = journal
        self.clock = clock
        self.cursor = cursor or Cursor("first", 0, 0)
        self.ended = False

    @property
    def state(self) -> str:
        return ENDED if self.ended else self.cursor.encode()

    # ---- the three requests -------------------------------------------------------------------

    async def start(self, caller: str, channel_id: str, channel_name: str, refuse: bool = False) -> Instruction:
        """A new call: journal it and hand out its first step (``refuse``: busy at once, the call
        cannot be carried out — its plan does not fit on the channel)."""
        await self.journal.record(
            CallStarted(self.call_id, self.clock(), caller, self.plan.extension, channel_id, self.plan.reasons,
                        channel_name=channel_name)
        )
        if refuse:
            return await self.fail()
        if self.plan.first is not None:
            return await self.ring(self.plan.first)
        return await self.carry_out("no_answer", 0)

    async def next(self, report: Report) -> Instruction:
        """The step in progress is over (the caller is still there): record it, hand out the next."""
        step = self.pending()
        cursor = self.cursor
        if isinstance(step, Ring):
            outcome, answered_by = self.ring_result(report, step)
            await self.end_leg(cursor.leg, outcome.value, answered_by, self.answered_at(report, outcome),
                               cause=f"{report.dialstatus},{report.hangupcause}")
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
            sound = step.sound or ""
            await self.end_leg(cursor.leg, "played" if report.playback == "SUCCESS" else "unreachable", cause=sound)
            if isinstance(step, Drop):
                await self.end("dropped", "message, then hangup")
                return self.finish("hangup")
            return await self.carry_out(cursor.branch, cursor.index + 1)
        if isinstance(step, Offer):
            if await self.offer_taken(step, report.digit):
                return self.finish("callback")
            return await self.carry_out(cursor.branch, cursor.index + 1)
        if isinstance(step, Voicemail):
            left = message_left(report.vm_before, report.vm_after)
            await self.end_leg(cursor.leg, "message_left" if left else "no_message", cause=report.vmstatus)
            await self.end("voicemail", "message left" if left else "no message left")
            return self.finish("hangup")
        raise ValueError(f"call {self.call_id}: no step at {cursor.encode()}")

    async def hangup(self, report: Report) -> None:
        """The caller hung up during the step in progress (the dialplan's h extension)."""
        step = self.pending()
        leg = self.cursor.leg
        if isinstance(step, Ring):
            answered_by = self.answered_by(report, step) if report.dialstatus == "ANSWER" else None
            if answered_by is not None:
                # They talked and the caller hung up: the call is over and it was answered.
                await self.end_leg(leg, "answered", answered_by, self.answered_at(report, Outcome.ANSWERED))
                await self.end("answered", f"answered by {answered_by}")
            else:
                await self.end_leg(leg, "caller_hung_up")
                await self.end("caller_hung_up", "the caller hung up")
        elif isinstance(step, Offer):
            await self.end_leg(leg, "caller_hung_up", cause="answered for the offer")
            await self.end("caller_hung_up", "the caller hung up")
        elif isinstance(step, Voicemail):
            # Hanging up is how a caller ends a message; the h extension counted the box again.
            left = message_left(report.vm_before, report.vm_after)
            await self.end_leg(leg, "message_left" if left else "no_message")
            await self.end("voicemail", "message left" if left else "no message left")
        else:  # an announcement or the drop message: its leg stays open, as in the ARI flow
            await self.end("caller_hung_up", "the caller hung up")
        self.ended = True

    async def fail(self) -> Instruction:
        await self.end("failed", "internal error, busy given")
        return self.finish("busy", cdr_off=self.cursor.dialled)

    # ---- steps ----------------------------------------------------------------------------------

    async def carry_out(self, branch: str, start: int) -> Instruction:
        steps = self.steps(branch)
        self.cursor = Cursor(branch, start, self.cursor.leg, self.cursor.dialled)
        if start >= len(steps):
            # A branch always ends in a drop or voicemail; this is a plan we did not expect.
            return await self.drop(Drop(kind="busy"))
        step = steps[start]
        if isinstance(step, Offer):
            if self.callbacks is None:
                log.info("call %s: no callback offer (no AMI for callbacks)", self.call_id)
                return await self.carry_out(branch, start + 1)  # the offer's fallback runs
            verdict = await self.callbacks.vet(self.caller, step.extension, self.call_id)
            leg = await self.start_leg("callback_offer", (step.extension,))
            if not verdict.allowed:  # the caller gets the action's fallback at once
                await self.end_leg(leg, verdict.leg_outcome, cause=verdict.why)
                return await self.carry_out(branch, start + 1)
            return Instruction("offer", {"PBX_LEG": f"{self.call_id}:{leg}:callback_offer:{step.extension}:answered",
                                         "PBX_SOUND": playback_name(step.sound),
                                         "PBX_OFFER_TIMEOUT": str(step.digit_timeout)})
        if isinstance(step, Ring):
            return await self.ring(step)
        if isinstance(step, Announce):
            await self.start_leg("announcement")
            return Instruction("announce", {"PBX_SOUND": playback_name(step.sound), "PBX_ANSWER": "1" if step.answer_first else ""})
        if isinstance(step, Voicemail):
            leg = await self.start_leg("voicemail", (step.extension,))
            return Instruction("voicemail", {"PBX_TO": step.extension, "PBX_MAILBOX": step.mailbox,
                                             "PBX_LEG": f"{self.call_id}:{leg}:voicemail:{step.extension}"})
        return await self.drop(step)

    async def offer_taken(self, step: Offer, digit: str) -> bool:
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

    async def ring(self, step: Ring) -> Instruction:
        leg = await self.start_leg(step.role, tuple(t.extension for t in step.targets), step.department)
        self.cursor.dialled = True
        who = "+".join(t.extension for t in step.targets)
        return Instruction("ring", {
            "PBX_TO": step.department or step.targets[0].extension,  # the CDR's dst
            "PBX_DIAL": "&".join(t.endpoint for t in step.targets),
            "PBX_RINGTIME": str(step.timeout),
            "PBX_LEG": f"{self.call_id}:{leg}:{step.role}:{who}",
        })

    async def drop(self, step: Drop) -> Instruction:
        # After a Dial() the caller is here only to be ended: no CDR row for that (see the ARI
        # flow's no_cdr_for_the_rest). A call that never dialled keeps its one row.
        if step.kind == "message" and step.sound:
            await self.start_leg("drop_message")
            return Instruction("announce", {"PBX_SOUND": playback_name(step.sound), "PBX_ANSWER": ""},
                               cdr_off=self.cursor.dialled)
        await self.end("dropped", "busy")
        return self.finish("busy", cdr_off=self.cursor.dialled)

    def finish(self, do: str, cdr_off: bool = False) -> Instruction:
        self.ended = True
        return Instruction(do, cdr_off=cdr_off)

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

    def ring_result(self, report: Report, step: Ring) -> tuple[Outcome, str | None]:
        outcome = Outcome.from_dialstatus(report.dialstatus)
        if outcome is not Outcome.ANSWERED:
            return outcome, None
        answered = self.answered_by(report, step)
        if answered is None:
            answered = step.targets[0].extension if len(step.targets) == 1 else "?"
        return outcome, answered

    @staticmethod
    def answered_by(report: Report, step: Ring) -> str | None:
        return step.answered_by(report.peer)

    def answered_at(self, report: Report, outcome: Outcome) -> datetime | None:
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
        self.ended = True
        await self.journal.record(CallEnded(self.call_id, self.clock(), result, detail))
        log.info("call %s to %s: %s (%s)", self.call_id, self.plan.extension, result, detail)
