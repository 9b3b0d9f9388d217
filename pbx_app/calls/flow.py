"""The story of one direct call, top to bottom: ring the employee, and if they do not answer,
carry out the plan — announce, forward, voicemail, or drop.

The dialplan does the ringing (context pbx-dial: one Dial() per leg, so each leg gets its own
CDR row) and hands the caller back to us; state that must survive an app restart is kept in
channel variables (PBX_CALL_ID, PBX_PLAN, PBX_CURSOR)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from ..ari import AriError
from ..history.events import CallEnded, CallResult, CallStarted, Journal, LegEnded, LegOutcome, LegRole, LegStarted
from ..routing import Announce, Drop, Outcome, Plan, Ring, Step, Voicemail
from .channel import CallChannel, CallerGone

log = logging.getLogger(__name__)

DIAL_CONTEXT = "pbx-dial"
VOICEMAIL_CONTEXT = "pbx-voicemail"
# r: the caller hears ringing; g: back to us when the callee hangs up, so we end the call.
DIAL_OPTIONS = "rg"


@dataclass
class Cursor:
    """Where the flow stands: which branch of the plan and which step in it, and the leg number."""

    branch: str  # "first", "no_answer", "busy", "unreachable"
    index: int
    leg: int

    def encode(self) -> str:
        return f"{self.branch}:{self.index}:{self.leg}"

    @classmethod
    def decode(cls, text: str) -> "Cursor":
        branch, index, leg = text.split(":")
        return cls(branch, int(index), int(leg))


@dataclass
class RingResult:
    outcome: Outcome
    answered_by: str | None = None
    cause: str = ""


class CallFlow:
    def __init__(self, call: CallChannel, plan: Plan, call_id: str, journal: Journal, clock: Callable):
        self.call = call
        self.plan = plan
        self.call_id = call_id
        self.journal = journal
        self.clock = clock
        self.cursor = Cursor("first", 0, 0)
        self.result: CallResult | None = None
        self.dialled = False  # a Dial() has run for this call: Asterisk has begun a CDR row per leg

    # ---- the story --------------------------------------------------------------------------

    async def run(self) -> None:
        """A new call, just arrived in Stasis."""
        call = self.call
        await self.journal.record(
            CallStarted(self.call_id, self.clock(), call.caller, self.plan.extension, call.id, self.plan.reasons,
                        channel_name=call.name)
        )
        try:
            await call.subscribe()
            await call.set_vars({"PBX_CALL_ID": self.call_id, "PBX_PLAN": self.plan.to_json()})
            await call.ring()
            outcome = None
            if self.plan.first is not None:
                result = await self.ring(self.plan.first)
                if result.outcome is Outcome.ANSWERED:
                    return await self.end("answered", f"answered by {result.answered_by}")
                outcome = result.outcome
            await self.carry_out(self.branch_name(outcome), 0)
        except CallerGone:
            await self.end("caller_hung_up", "the caller hung up")
        except Exception:
            log.exception("call %s: the flow failed; the caller gets busy", self.call_id)
            await self.fail()

    async def resume(self, pending: Cursor, reentry_args: list[str], what: str) -> None:
        """The app restarted while the caller was out in the dialplan; pick the story up again."""
        self.cursor = pending
        self.dialled = True
        log.info("call %s: resumed at %s after %s %s", self.call_id, pending.encode(), what, reentry_args)
        try:
            if what == "voicemail":
                return await self._voicemail_done(reentry_args)
            step = self._pending_ring(pending)
            if reentry_args[:1] == ["ANSWER"]:
                # The Dial events that named who picked up went to the app that died; Dial
                # left the answering channel's name on the caller.
                self.call.dial.answered_peer = await self.call.get_var("DIALEDPEERNAME")
            result = self._ring_result(reentry_args, step)
            await self._end_ring_leg(result)
            if result.outcome is Outcome.ANSWERED:
                await self.no_cdr_for_the_rest()
                await self.call.hangup()
                return await self.end("answered", f"answered by {result.answered_by}")
            if pending.branch == "first":
                return await self.carry_out(self.branch_name(result.outcome), 0)
            await self.carry_out(pending.branch, pending.index + 1)
        except CallerGone:
            await self.end("caller_hung_up", "the caller hung up")
        except Exception:
            log.exception("call %s: the resumed flow failed; the caller gets busy", self.call_id)
            await self.fail()

    async def carry_out(self, branch: str, start: int) -> None:
        """Runs the branch's steps in order until someone answers or the call ends."""
        steps = self.steps(branch)
        for index in range(start, len(steps)):
            self.cursor = Cursor(branch, index, self.cursor.leg)
            step = steps[index]
            if isinstance(step, Ring):
                result = await self.ring(step)
                if result.outcome is Outcome.ANSWERED:
                    return await self.end("answered", f"answered by {result.answered_by}")
            elif isinstance(step, Announce):
                await self.announce(step)
            elif isinstance(step, Voicemail):
                return await self.voicemail(step)
            elif isinstance(step, Drop):
                return await self.drop(step)
        # A branch always ends in a drop or voicemail; this is a plan we did not expect.
        await self.drop(Drop(kind="busy"))

    # ---- steps ----------------------------------------------------------------------------------

    async def ring(self, step: Ring) -> RingResult:
        role: LegRole = step.role
        leg = await self.start_leg(role, tuple(t.extension for t in step.targets), step.department)
        who = "+".join(t.extension for t in step.targets)
        await self.call.set_vars(
            {
                "PBX_DIAL": "&".join(t.endpoint for t in step.targets),
                "PBX_RINGTIME": str(step.timeout),
                "PBX_DIAL_OPTIONS": DIAL_OPTIONS,
                "PBX_LEG": f"{self.call_id}:{leg}:{role}:{who}",
                "PBX_CURSOR": self.cursor.encode(),
            }
        )
        self.dialled = True
        await self.call.continue_to(DIAL_CONTEXT, step.department or step.targets[0].extension)
        try:
            reentry = await self.call.wait_reentry()
        except CallerGone:
            answered = self._answered_by(step)
            if answered is None:
                await self.end_leg(leg, "caller_hung_up")
                raise
            # They talked and the caller hung up: the call is over and it was answered.
            await self.end_leg(leg, "answered", answered_by=answered, answered_at=self.call.dial.answered_at)
            return RingResult(Outcome.ANSWERED, answered)
        result = self._ring_result(reentry.args, step)
        await self._end_ring_leg(result)
        if result.outcome is Outcome.ANSWERED:
            await self.no_cdr_for_the_rest()
            await self.call.hangup()  # the callee hung up first; we end the caller's side
        return result

    async def announce(self, step: Announce) -> None:
        leg = await self.start_leg("announcement")
        if step.answer_first:
            await self.call.answer()
        played = await self.call.play(step.sound)
        await self.end_leg(leg, "played" if played else "unreachable", cause=step.sound)

    async def voicemail(self, step: Voicemail) -> None:
        await self.start_leg("voicemail", (step.extension,))
        await self.call.set_vars(
            {
                "PBX_MAILBOX": step.mailbox,
                "PBX_LEG": f"{self.call_id}:{self.cursor.leg}:voicemail:{step.extension}",
                "PBX_CURSOR": self.cursor.encode(),
            }
        )
        await self.call.continue_to(VOICEMAIL_CONTEXT, step.extension)
        counts: dict[str, str] = {}
        try:
            while True:
                event = await self.call.next_event()
                if event.get("type") == "ChannelVarset" and event.get("variable", "").startswith("PBX_VM_"):
                    counts[event["variable"]] = event.get("value", "")
                elif event.get("type") == "StasisStart":
                    args = list(event.get("args") or [])[1:]
                    return await self._voicemail_done(args)
        except CallerGone:
            # Hanging up is how a caller ends a message; the h extension counted the box again.
            await self._drain_varsets(counts)
            left = _message_left(counts.get("PBX_VM_BEFORE"), counts.get("PBX_VM_AFTER"))
            await self.end_leg(self.cursor.leg, "message_left" if left else "no_message")
            await self.end("voicemail", "message left" if left else "no message left")

    async def drop(self, step: Drop) -> None:
        await self.no_cdr_for_the_rest()
        if step.kind == "message" and step.sound:
            leg = await self.start_leg("drop_message")
            played = await self.call.play(step.sound)
            await self.end_leg(leg, "played" if played else "unreachable", cause=step.sound)
            await self.call.hangup("normal")
            return await self.end("dropped", "message, then hangup")
        await self.call.hangup("busy")
        await self.end("dropped", "busy")

    async def fail(self) -> None:
        try:
            await self.no_cdr_for_the_rest()
            await self.call.hangup("busy")
        except Exception:
            log.exception("call %s: could not hang up", self.call_id)
        await self.end("failed", "internal error, busy given")

    async def no_cdr_for_the_rest(self) -> None:
        """After the last Dial() the caller is back with us only to be ended (busy tone, a
        message, the hangup once the callee hung up). That is no leg, but Asterisk would post
        it as one more CDR row — dst the last number rung, disposition BUSY or ANSWERED — a leg
        that never was. A call that never dialled keeps its one row."""
        if self.dialled:
            try:
                await self.call.set_vars({"CDR_PROP(disable)": "1"})
            except AriError as exc:
                log.warning("call %s: could not close its CDR (%s)", self.call_id, exc)

    # ---- bookkeeping ------------------------------------------------------------------------------

    def branch_name(self, outcome: Outcome | None) -> str:
        if outcome is Outcome.BUSY:
            return "busy"
        if outcome is Outcome.UNREACHABLE:
            return "unreachable"
        return "no_answer"

    def steps(self, branch: str) -> tuple[Step, ...]:
        if branch == "first":
            return (self.plan.first,) if self.plan.first else ()
        return {"no_answer": self.plan.on_no_answer, "busy": self.plan.on_busy, "unreachable": self.plan.on_unreachable}[
            branch
        ]

    def _answered_by(self, step: Ring | None) -> str | None:
        peer = self.call.dial.answered_peer
        if peer is None:
            return None
        if step is not None:
            for target in step.targets:
                if peer.startswith(target.endpoint + "-"):
                    return target.extension
        return peer

    def _pending_ring(self, pending: Cursor) -> Ring | None:
        steps = self.steps(pending.branch)
        step = steps[pending.index] if pending.index < len(steps) else None
        return step if isinstance(step, Ring) else None

    def _ring_result(self, args: list[str], step: Ring | None = None) -> RingResult:
        status = args[0] if args else ""
        outcome = Outcome.from_dialstatus(status)
        answered = self._answered_by(step) if outcome is Outcome.ANSWERED else None
        if outcome is Outcome.ANSWERED and answered is None:
            answered = step.targets[0].extension if step is not None and len(step.targets) == 1 else "?"
        return RingResult(outcome, answered, cause=",".join(args))

    async def _end_ring_leg(self, result: RingResult) -> None:
        outcome: LegOutcome = result.outcome.value  # type: ignore[assignment]
        await self.end_leg(
            self.cursor.leg,
            outcome,
            answered_by=result.answered_by,
            answered_at=self.call.dial.answered_at,
            cause=result.cause,
        )

    async def _voicemail_done(self, args: list[str]) -> None:
        before, after = (args[1], args[2]) if len(args) >= 3 else (None, None)
        left = _message_left(before, after)
        await self.end_leg(self.cursor.leg, "message_left" if left else "no_message", cause=args[0] if args else "")
        await self.call.hangup()
        await self.end("voicemail", "message left" if left else "no message left")

    async def _drain_varsets(self, counts: dict[str, str]) -> None:
        # After the hangup request the h extension still runs; its Set() arrives as ChannelVarset
        # before ChannelDestroyed. Read what is already queued, without waiting for more than that.
        import asyncio

        deadline = asyncio.get_running_loop().time() + 2.0
        while asyncio.get_running_loop().time() < deadline:
            try:
                event = await asyncio.wait_for(self.call.queue.get(), deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                return
            if event.get("type") == "ChannelVarset" and event.get("variable", "").startswith("PBX_VM_"):
                counts[event["variable"]] = event.get("value", "")
            if event.get("type") == "ChannelDestroyed":
                return

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
        log.info("call %s from %s to %s: %s (%s)", self.call_id, self.call.caller, self.plan.extension, result, detail)


def _message_left(before: str | None, after: str | None) -> bool:
    try:
        return int(after or 0) > int(before or 0)
    except ValueError:
        return False
