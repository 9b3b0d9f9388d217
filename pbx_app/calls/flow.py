"""One direct call carried over ARI: the call story (pbx_app/story) decides, this adapter puts
each of its steps on the caller's channel and sends the caller into the dialplan, then turns what
comes back into the story's next report.

The dialplan does the ringing and the announcements (pbx-dial: [announcement] + Dial(), so each
leg gets its own CDR row and the caller is in the dialplan, not in our hands, while it waits),
reports with UserEvents (contract.report) and hands the caller back to Stasis only where the
story needs a new decision: after an unanswered ring and after a callback offer. Before each step
the channel gets everything another engine, or the dialplan alone, needs to go on without us.

Where every branch after the first ring fits what the dialplan can carry alone (PBX_FB's shape:
calls/fallback.carries), the first ring also gets PBX_CARRY: while our heartbeat is fresh, the
dialplan then goes on after the ring by itself (pbx-carry) and reports each step; we only listen
and feed the story, and the caller enters Stasis once. A caller that comes back anyway (our beat
looked stale) is served as before."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

from ..callback.offer import Requests
from ..history.events import Journal
from ..routing import Plan
from ..story import CallStory, Cursor, Instruction, Report
from ..story.codec import pack_plan
from .. import contract as dp
from .channel import CallChannel, CallerGone
from .fallback import carries_after_first_ring, next_fallback

log = logging.getLogger(__name__)


class CallFlow:
    """``app`` is the engine's ARI application: the caller comes back to it after each ring."""

    def __init__(self, call: CallChannel, plan: Plan, journal: Journal, clock: Callable[[], datetime], app: str,
                 callbacks: Requests | None = None, cursor: Cursor | None = None, carry_as: str = ""):
        self.call = call
        self.story = CallStory(plan, call.id, journal, clock, cursor, callbacks=callbacks, caller=call.caller)
        self.call_id = call.id
        self.app = app
        self.carry_as = carry_as  # our engine's run, named in PBX_CARRY; "": the dialplan never carries
        self._state_saved = False  # the plan and our name are on the channel
        self._carried = False  # the dialplan carries the step in progress (PBX_CARRY): we only listen

    @property
    def result(self):
        return self.story.result

    # ---- the two ways a flow begins ------------------------------------------------------------------

    async def run(self) -> None:
        """A new call, just claimed."""
        # At the channel's creation time, so that any engine looking at the call agrees on it.
        await self._carry(lambda: self.story.start(self.call.id, self.call.name, at=self.call.created))

    async def resume(self, entry: dp.Entry) -> None:
        """The engine that owned the call is gone and the caller came back to us after a ring or
        an offer: the story goes on from the plan and cursor on the channel."""
        log.info("call %s: taken over at %s after %s %s", self.call_id, self.story.cursor.encode(), entry.status,
                 entry.cause)
        report = (Report(digit=entry.status) if entry.what == "offered"
                  else Report(dialstatus=entry.status, hangupcause=entry.cause))

        async def go_on() -> Instruction:
            await self.story.restate(self.call.id, self.call.name, at=self.call.created)
            return await self.story.next(report)

        await self._carry(go_on)

    async def _carry(self, first: Callable) -> None:
        """Carries the story's steps out until its journal is closed."""
        try:
            instruction = await first()
            await self.call.subscribe()
            while instruction is not None:
                instruction = await self.step(instruction)
        except CallerGone:
            await self.story.hangup(Report())
        except Exception:
            log.exception("call %s: the flow failed; the caller gets busy", self.call_id)
            await self.fail()

    # ---- one step ----------------------------------------------------------------------------------

    async def step(self, instruction: Instruction) -> Instruction | None:
        """Sends the caller to do ``instruction``; the story's next instruction once the caller is
        back, None when the call is over."""
        do = instruction.do
        if self._carried:
            return await self._hear(instruction)
        if do == "announce":
            return await self._announce_then(instruction)
        if do == "ring":
            await self._send(dp.DIAL, instruction, self._ring_vars(instruction))
            return await self._after_ring()
        if do == "voicemail":
            await self._send(dp.VOICEMAIL, instruction, self._voicemail_vars(instruction))
            return await self._until_gone()
        if do == "offer":
            await self._send(dp.OFFER, instruction, {
                dp.LEG: instruction.leg, dp.ANNOUNCE: instruction.sound, dp.OFFER_TIMEOUT: str(instruction.offer_timeout),
                dp.FALLBACKS: self._fallbacks(Cursor.decode(instruction.cursor), offer=True).encode()})
            return await self._after_offer()
        if do == "message":
            await self.call.continue_to(dp.END, "message")
            return await self._until_gone(announced=False)
        # busy | callback | hangup: the story is over, the dialplan ends the call.
        await self.call.continue_to(dp.END, {"hangup": "answered"}.get(do, do))
        return None

    async def _hear(self, instruction: Instruction) -> Instruction | None:
        """The dialplan does ``instruction`` by itself (pbx-carry); we hear how it goes. Only the
        shapes calls/fallback.carries allows come here: an announcement is followed by a ring."""
        do = instruction.do
        if do == "ring":
            return await self._after_ring()
        if do == "announce":
            return await self._after_ring(announced=False)
        if do == "voicemail":
            return await self._until_gone()
        if do == "message":
            return await self._until_gone(announced=False)
        return None  # busy | hangup: the dialplan ends the call

    async def _announce_then(self, announce: Instruction) -> Instruction | None:
        """pbx-dial and pbx-voicemail play the announcement and go on with the step after it in one
        go; the story hears the announcement when the dialplan reports it played."""
        then = announce.then
        if then is None:  # nothing the dialplan can do after it in the same go (no such plan yet)
            return await self.story.next(Report(playback="SKIPPED"))
        sound = {dp.ANNOUNCE: announce.sound, dp.ANSWER_FIRST: "1" if announce.answer_first else ""}
        if then.do == "ring":
            await self._send(dp.DIAL, then, {**self._ring_vars(then), **sound})
            return await self._after_ring(announced=False)
        await self._send(dp.VOICEMAIL, then, {**self._voicemail_vars(then), **sound})
        return await self._until_gone(announced=False)

    async def _after_ring(self, announced: bool = True) -> Instruction | None:
        try:
            while True:
                event = await self.call.next_event()
                report = dp.report(event)
                if report and report[0] == dp.ANNOUNCED and not announced:
                    announced = True
                    await self.story.next(Report(playback=report[1]))
                elif report and report[0] == dp.DIALED:  # the dialplan goes on by itself (pbx-carry)
                    if not announced:
                        await self.story.next(Report(playback="FAILED"))
                    self._carried = True
                    status, cause = dp.dialed(report[1])
                    return await self.story.next(Report(dialstatus=status, hangupcause=cause))
                elif event.get("type") == "StasisStart":
                    if not announced:  # no report of the announcement came: it was not heard
                        await self.story.next(Report(playback="FAILED"))
                    self._carried = False
                    entry = dp.Entry.from_args(event.get("args") or [])
                    return await self.story.next(Report(dialstatus=entry.status, hangupcause=entry.cause))
        except CallerGone:
            if not announced:
                await self.story.hangup(Report())
                return None
            if self.call.dial.answered_peer is None:
                await self.call.drain()  # an answered ring is reported from the h extension, after the hangup
            dial = self.call.dial
            if dial.answered_peer is None:
                await self.story.hangup(Report())
            else:
                await self.story.hangup(Report(dialstatus="ANSWER", peer=dial.answered_peer,
                                               answered_ms=str(dial.talked_ms)))
            return None

    async def _after_offer(self) -> Instruction | None:
        while True:
            event = await self.call.next_event()  # CallerGone: the story ends the offer's leg
            if event.get("type") == "StasisStart":
                entry = dp.Entry.from_args(event.get("args") or [])
                return await self.story.next(Report(digit=entry.status))

    async def _until_gone(self, announced: bool = True) -> None:
        """A voicemail or the drop message: the dialplan ends the call; hanging up is how a
        caller ends a message. Its reports come as UserEvents, the last from the h extension."""
        reports: dict[str, str] = {}

        async def heard(event: dict) -> None:
            nonlocal announced
            report = dp.report(event)
            if report is None:
                return
            if report[0] == dp.ANNOUNCED and not announced:
                announced = True
                await self.story.next(Report(playback=report[1]))  # the drop message ends the story here
            else:
                reports[report[0]] = report[1]

        try:
            while True:
                await heard(await self.call.next_event())
        except CallerGone:
            for event in await self.call.drain():
                await heard(event)
        await self.story.hangup(Report(vm_before=reports.get(dp.VM_BEFORE, ""), vm_after=reports.get(dp.VM_AFTER, "")))
        return None

    async def fail(self) -> None:
        await self.story.fail()
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

    # ---- what the channel carries ----------------------------------------------------------------

    async def _send(self, context: str, instruction: Instruction, variables: dict[str, str]) -> None:
        """One request for the step's variables (and, once, the plan and our name), one to go."""
        variables[dp.CURSOR] = instruction.cursor
        if not self._state_saved:
            variables[dp.ENGINE] = self.app
            variables[dp.PLAN] = pack_plan(self.story.plan, reasons=True)
            variables[dp.CARRY] = self.carry_as if self.carry_as and carries_after_first_ring(self.story.plan) else ""
        await self.call.set_vars(variables)
        self._state_saved = True
        await self.call.continue_to(context, instruction.to)

    def _ring_vars(self, ring: Instruction) -> dict[str, str]:
        return {dp.RING: dp.PackedRing(ring.dial, ring.ringtime, ring.leg).encode(), dp.ANNOUNCE: "", dp.WHISPER: ring.whisper,
                dp.FALLBACKS: self._fallbacks(Cursor.decode(ring.cursor)).encode()}

    @staticmethod
    def _voicemail_vars(box: Instruction) -> dict[str, str]:
        return {dp.MAILBOX: box.mailbox, dp.LEG: box.leg, dp.ANNOUNCE: ""}

    def _fallbacks(self, at: Cursor, offer: bool = False) -> dp.Fallbacks:
        """What the dialplan does if no engine takes the caller back after the step at ``at``."""
        steps = self.story.steps
        if at.branch == "first" and not offer:
            return dp.Fallbacks(*(next_fallback(steps(branch), 0, at.leg, self.call_id, branch)
                                  for branch in ("no_answer", "busy", "unreachable")))
        return dp.Fallbacks(next_fallback(steps(at.branch), at.index + 1, at.leg, self.call_id))
