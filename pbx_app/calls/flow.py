"""The story of one direct call, top to bottom: ring the employee, and if they do not answer,
carry out the plan — announce, forward, voicemail, or drop.

The dialplan does the ringing and the announcements (pbx-dial: [announcement] + Dial(), so each
leg gets its own CDR row and the caller is in the dialplan, not in our hands, while it waits) and
hands the caller back after an unanswered ring. Before each step the flow leaves on the channel
everything another engine, or the dialplan alone, needs to go on without it (contract.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from ..history.events import (CallEnded, CallResult, CallStarted, Journal, LegEnded, LegOutcome, LegRole, LegStarted,
                              message_left)
from ..callback.offer import Requests, answer_offer
from ..routing import Announce, Drop, Outcome, Plan, Ring, Step, Voicemail
from ..routing.plan import Offer, branch_name
from ..sounds import playback_name
from .. import contract as dp
from .channel import CallChannel, CallerGone
from .fallback import next_fallback

log = logging.getLogger(__name__)


# Why the outbound guard said no, as the offer's leg tells it (history: "no callback offer: …").
@dataclass
class Cursor:
    """Where the flow stands: which branch of the plan and which step in it, and the last leg number."""

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
    """``app`` is the engine's ARI application: the caller comes back to it after each ring."""

    def __init__(self, call: CallChannel, plan: Plan, journal: Journal, clock: Callable[[], datetime], app: str,
                 callbacks: Requests | None = None):
        self.call = call
        self.callbacks = callbacks  # where callback requests go; None: no offers (the fallback runs)
        self.plan = plan
        # The caller's uniqueid: every engine, the dialplan and the CDR (linkedid) agree on it.
        self.call_id = call.id
        self.journal = journal
        self.clock = clock
        self.app = app
        self.cursor = Cursor("first", 0, 0)
        self.result: CallResult | None = None
        self._state_saved = False  # the plan and our name are on the channel

    # ---- the story --------------------------------------------------------------------------

    async def run(self) -> None:
        """A new call, just claimed."""
        await self._started()
        try:
            await self.call.subscribe()
            outcome = None
            if self.plan.first is not None:
                result = await self.ring(self.plan.first)
                if result.outcome is Outcome.ANSWERED:
                    return await self.end("answered", f"answered by {result.answered_by}")
                outcome = result.outcome
            await self.carry_out(branch_name(outcome), 0)
        except CallerGone:
            await self.end("caller_hung_up", "the caller hung up")
        except Exception:
            log.exception("call %s: the flow failed; the caller gets busy", self.call_id)
            await self.fail()

    async def resume(self, pending: Cursor, entry: dp.Entry) -> None:
        """The engine that owned the call is gone and the caller came back to us after a ring:
        pick the story up from the state on the channel."""
        self.cursor = pending
        self._state_saved = False  # our name goes on the channel with the next step
        log.info("call %s: taken over at %s after %s %s", self.call_id, pending.encode(), entry.status, entry.cause)
        await self._started()
        try:
            await self.call.subscribe()
            step = self._step_at(pending)
            if isinstance(step, Offer):
                await self.journal.record(LegStarted(self.call_id, pending.leg, self.clock(), "callback_offer",
                                                     (step.extension,)))
                if not await self._offer_answered(step, pending.leg, entry.status):
                    await self.carry_out(pending.branch, pending.index + 1)
                return
            if not isinstance(step, Ring):
                raise RuntimeError(f"cursor {pending.encode()} is not at a ring")
            await self._leg_started(pending.leg, step)
            if pending.index > 0 and isinstance(self.steps(pending.branch)[pending.index - 1], Announce):
                await self.end_leg(pending.leg - 1, "played")
            result = RingResult(Outcome.from_dialstatus(entry.status), cause=f"{entry.status},{entry.cause}")
            await self._end_ring_leg(pending.leg, result)
            if pending.branch == "first":
                return await self.carry_out(branch_name(result.outcome), 0)
            await self.carry_out(pending.branch, pending.index + 1)
        except CallerGone:
            await self.end("caller_hung_up", "the caller hung up")
        except Exception:
            log.exception("call %s: the resumed flow failed; the caller gets busy", self.call_id)
            await self.fail()

    async def carry_out(self, branch: str, start: int) -> None:
        """Runs the branch's steps in order until someone answers or the call ends. An
        announcement is played by the dialplan at the start of the step that follows it."""
        steps = self.steps(branch)
        announce: Announce | None = None
        for index in range(start, len(steps)):
            self.cursor = Cursor(branch, index, self.cursor.leg)
            step = steps[index]
            if isinstance(step, Announce):
                announce = step
            elif isinstance(step, Ring):
                result = await self.ring(step, announce)
                announce = None
                if result.outcome is Outcome.ANSWERED:
                    return await self.end("answered", f"answered by {result.answered_by}")
            elif isinstance(step, Offer):
                announce = None
                if await self.offer(step):
                    return
            elif isinstance(step, Voicemail):
                return await self.voicemail(step, announce)
            elif isinstance(step, Drop):
                return await self.drop(step)
        # A branch always ends in a drop or voicemail; this is a plan we did not expect.
        await self.drop(Drop(kind="busy"))

    # ---- steps ----------------------------------------------------------------------------------

    async def ring(self, step: Ring, announce: Announce | None = None) -> RingResult:
        announce_leg = await self.start_leg("announcement") if announce else None
        leg = self.cursor.leg = self.cursor.leg + 1
        who = "+".join(t.extension for t in step.targets)
        await self.send(
            dp.DIAL,
            step.department or step.targets[0].extension,
            {
                dp.RING: dp.Ring("&".join(t.endpoint for t in step.targets), step.timeout,
                                 f"{self.call_id}:{leg}:{step.role}:{who}").encode(),
                **self._announcement(announce),
                dp.FALLBACKS: self._fallbacks(leg).encode(),
            },
        )
        if announce_leg is None:
            await self._leg_started(leg, step)
        try:
            while True:
                event = await self.call.next_event()
                kind = event.get("type")
                report = dp.report(event)
                if report and report[0] == dp.ANNOUNCED and announce_leg is not None:
                    await self.end_leg(announce_leg, "played" if report[1] == "SUCCESS" else "unreachable",
                                       cause=announce.sound if announce else None)
                    announce_leg = None
                    await self._leg_started(leg, step)
                elif kind == "StasisStart":
                    entry = dp.Entry.from_args(event.get("args") or [])
                    result = RingResult(Outcome.from_dialstatus(entry.status), cause=f"{entry.status},{entry.cause}")
                    await self._end_ring_leg(leg, result)
                    return result
        except CallerGone:
            if announce_leg is not None:
                await self.end_leg(announce_leg, "caller_hung_up")
                raise
            if self.call.dial.answered_peer is None:
                await self.call.drain()  # an answered ring is reported from the h extension, after the hangup
            answered = self._answered_by(step)
            if answered is None:
                await self.end_leg(leg, "caller_hung_up")
                raise
            # They talked, and one of them hung up: the call is over and it was answered.
            await self.end_leg(leg, "answered", answered_by=answered, answered_at=self.call.dial.answered_at)
            return RingResult(Outcome.ANSWERED, answered)

    async def offer(self, step: Offer) -> bool:
        """A callback offer. True: the client pressed 1, the request is stored and the call is
        over; False: the plan goes on with the next step (the action's ``then``)."""
        if self.callbacks is None:
            log.info("call %s: no callback offer (no request store)", self.call_id)
            return False
        verdict = await self.callbacks.vet(self.call.caller, step.extension, self.call_id)
        leg = await self.start_leg("callback_offer", (step.extension,))
        if not verdict.allowed:  # the caller gets the action's fallback at once
            await self.end_leg(leg, verdict.leg_outcome, cause=verdict.why)
            return False
        await self.send(
            dp.OFFER,
            step.extension,
            {dp.LEG: f"{self.call_id}:{leg}:callback_offer:{step.extension}:answered",
             dp.ANNOUNCE: playback_name(step.sound), dp.OFFER_TIMEOUT: str(step.digit_timeout),
             dp.FALLBACKS: self._fallbacks(leg).encode()},
        )
        try:
            while True:
                event = await self.call.next_event()
                if event.get("type") == "StasisStart":
                    entry = dp.Entry.from_args(event.get("args") or [])
                    return await self._offer_answered(step, leg, entry.status)
        except CallerGone:
            await self.end_leg(leg, "caller_hung_up", cause="answered for the offer")
            raise

    async def _offer_answered(self, step: Offer, leg: int, digit: str) -> bool:
        assert self.callbacks is not None  # no store: no offer was made
        answer = await answer_offer(self.callbacks, step, digit, self.call.caller, self.call_id, leg, self.clock(),
                                    busy=self.cursor.branch == "busy")
        await self.end_leg(leg, answer.outcome, cause=answer.cause)  # type: ignore[arg-type]
        if answer.request is None:
            return False
        await self.call.continue_to(dp.END, "callback")
        await self.end("callback_requested", f"callback requested: {step.extension} calls {answer.request.client} back")
        return True

    async def voicemail(self, step: Voicemail, announce: Announce | None = None) -> None:
        announce_leg = await self.start_leg("announcement") if announce else None
        leg = await self.start_leg("voicemail", (step.extension,))
        await self.send(
            dp.VOICEMAIL,
            step.extension,
            {dp.MAILBOX: step.mailbox, dp.LEG: f"{self.call_id}:{leg}:voicemail:{step.extension}",
             **self._announcement(announce)},
        )
        # The dialplan ends the call; hanging up is how a caller ends a message.
        counts: dict[str, str] = {}
        try:
            while True:
                report = dp.report(await self.call.next_event())
                if report:
                    counts[report[0]] = report[1]
        except CallerGone:
            for event in await self.call.drain():
                report = dp.report(event)
                if report:
                    counts[report[0]] = report[1]
        if announce_leg is not None:
            played = counts.get(dp.ANNOUNCED) == "SUCCESS"
            await self.end_leg(announce_leg, "played" if played else "caller_hung_up", cause=announce.sound if announce else None)
        if dp.VM_BEFORE not in counts:
            await self.end_leg(leg, "caller_hung_up")
            return await self.end("caller_hung_up", "the caller hung up")
        left = message_left(counts.get(dp.VM_BEFORE), counts.get(dp.VM_AFTER))
        await self.end_leg(leg, "message_left" if left else "no_message")
        await self.end("voicemail", "message left" if left else "no message left")

    async def drop(self, step: Drop) -> None:
        if step.kind == "message" and step.sound:
            leg = await self.start_leg("drop_message")
            await self.call.continue_to(dp.END, "message")
            played = False
            try:
                while True:
                    report = dp.report(await self.call.next_event())
                    if report and report[0] == dp.ANNOUNCED:
                        played = report[1] == "SUCCESS"
            except CallerGone:
                pass
            await self.end_leg(leg, "played" if played else "caller_hung_up", cause=step.sound)
            return await self.end("dropped", "message, then hangup")
        await self.call.continue_to(dp.END, "busy")
        await self.end("dropped", "busy")

    async def fail(self) -> None:
        try:
            await self.call.continue_to(dp.END, "busy")
        except CallerGone:
            pass
        except Exception:
            log.exception("call %s: could not send it to busy; hanging up", self.call_id)
            try:
                await self.call.hangup("busy")
            except Exception:
                log.exception("call %s: could not hang up", self.call_id)
        await self.end("failed", "internal error, busy given")

    # ---- what the channel carries ----------------------------------------------------------------

    async def send(self, context: str, extension: str, variables: dict[str, str]) -> None:
        """One request for the step's variables (and, once, the plan and our name), one to go."""
        variables[dp.CURSOR] = self.cursor.encode()
        if not self._state_saved:
            variables[dp.ENGINE] = self.app
            variables[dp.PLAN] = self.plan.to_json()
        await self.call.set_vars(variables)
        self._state_saved = True
        await self.call.continue_to(context, extension)

    @staticmethod
    def _announcement(announce: Announce | None) -> dict[str, str]:
        if announce is None:
            return {dp.ANNOUNCE: ""}
        return {dp.ANNOUNCE: playback_name(announce.sound), dp.ANSWER_FIRST: "1" if announce.answer_first else ""}

    def _fallbacks(self, leg: int) -> dp.Fallbacks:
        """What the dialplan does if no engine takes the caller back after this ring."""
        if self.cursor.branch == "first":
            return dp.Fallbacks(*(self._fallback(self.steps(branch), 0, leg) for branch in ("no_answer", "busy", "unreachable")))
        return dp.Fallbacks(self._fallback(self.steps(self.cursor.branch), self.cursor.index + 1, leg))

    def _fallback(self, steps: tuple[Step, ...], start: int, leg: int) -> dp.Fallback:
        return next_fallback(steps, start, leg, self.call_id)

    # ---- bookkeeping ------------------------------------------------------------------------------

    def steps(self, branch: str) -> tuple[Step, ...]:
        if branch == "first":
            return (self.plan.first,) if self.plan.first else ()
        return self.plan.branch({"no_answer": Outcome.NO_ANSWER, "busy": Outcome.BUSY,
                                 "unreachable": Outcome.UNREACHABLE}[branch])

    def _step_at(self, cursor: Cursor) -> Step | None:
        steps = self.steps(cursor.branch)
        return steps[cursor.index] if cursor.index < len(steps) else None

    def _answered_by(self, step: Ring) -> str | None:
        return step.answered_by(self.call.dial.answered_peer)

    async def _started(self) -> None:
        # At the channel's creation time, so that an engine taking the call over writes the same row.
        call = self.call
        await self.journal.record(CallStarted(self.call_id, call.created, call.caller, self.plan.extension, call.id,
                                              self.plan.reasons, channel_name=call.name))

    async def _leg_started(self, leg: int, step: Ring) -> None:
        await self.journal.record(LegStarted(self.call_id, leg, self.clock(), step.role,
                                             tuple(t.extension for t in step.targets), step.department))

    async def _end_ring_leg(self, leg: int, result: RingResult) -> None:
        outcome: LegOutcome = result.outcome.value  # type: ignore[assignment]
        await self.end_leg(leg, outcome, answered_by=result.answered_by, cause=result.cause)

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
