"""A call engine: one ARI application (pbx_app-<name>) among any number that serve the same
Asterisk. The dialplan offers each new call to all of them (StasisBroadcast); the first claim
wins and that engine runs the call's flow. A caller back from a ring comes straight to its owner;
if the owner is gone it is offered again, and whoever claims it carries the plan on from the
state on the channel. Nothing here needs another engine to be alive."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from datetime import datetime, timezone
from typing import Callable

from ..ari import AriClient, AriError, EventStream
from ..callback.service import CallbackService
from ..crm import CrmProvider
from ..crm import lookup as crm_lookup
from ..history.events import Journal, MemoryJournal
from ..policy import Policy
from ..outbound.forwards import vet_plan
from ..routing.decide import CallContext, decide
from .. import contract as dp
from .channel import CallChannel
from ..story import Cursor
from ..story.codec import decode_plan
from .flow import CallFlow
from .lateness import STALE_AFTER, Lateness

log = logging.getLogger(__name__)

# The ARI event types the flows read. Asterisk drops the others before they reach our websocket
# (the app's eventFilter, set on every connect). A feature that needs another type adds it here.
# Not Dial nor ChannelVarset: Dial() and bridging raise dozens of those per call, and Asterisk
# serialises each for the websocket; the dialplan reports what a flow needs as ChannelUserevent
# (contract.report). RESTResponse: the filter holds back the answers to requests made over the
# websocket too. DeviceStateChanged: a phone free again wakes the callbacks waiting for it.
# Not StasisEnd nor ChannelHangupRequest: a caller leaves Stasis only when we send it on, and its
# end is ChannelDestroyed, which comes after the h extension's last report (one event, not three).
EVENT_TYPES = (
    "CallBroadcast", "StasisStart", "ChannelDestroyed", "ChannelUserevent", "RESTResponse", "DeviceStateChanged",
)


def filtered_out(raw: str) -> bool:
    """A safety net for when Asterisk's event filter is not in force yet (the moments after a
    reconnect) or was lost: the variable flood is dropped unparsed."""
    return '"ChannelVarset"' in raw


def channel_ids(event: dict) -> list[str]:
    """The channels an event concerns, in the order we should deliver it."""
    ids = []
    for key in ("channel", "caller"):
        ch = event.get(key)
        if isinstance(ch, dict) and "id" in ch:
            ids.append(ch["id"])
    return ids


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class CallEngine:
    def __init__(
        self,
        ari: AriClient,
        policy: Callable[[], Policy],
        journal: Journal | None = None,
        clock: Callable[[], datetime] = _utcnow,
        crm: CrmProvider | None = None,
        max_calls: int = 0,
        callbacks: CallbackService | None = None,
        disown_late: bool = False,
    ):
        self.ari = ari
        self.policy = policy  # called once per new call: a reload never touches calls in flight
        self.crm = crm  # None: the policy's static CRM mapping only
        self.journal = journal or MemoryJournal()
        self.clock = clock
        self.max_calls = max_calls  # calls in progress past which new calls are left to others; 0: no limit
        self.calls: dict[str, CallChannel] = {}
        self.flows: dict[str, asyncio.Task] = {}
        self.tasks: set[asyncio.Task] = set()
        self.events = EventStream(ari)
        self.rng = random.Random()  # a random pick of the policy's; seeded once, not per call (~30 µs)
        self.run_id = secrets.token_hex(6)  # this process's run: what PBX_CARRY names (contract.CARRY)
        self.events.skip = filtered_out
        self.refused = 0  # new calls not claimed because we were full
        self.taken_over = 0  # calls claimed from an engine that was gone
        self.event_counts: dict[str, int] = {}  # ARI events received, by type (for /metrics)
        # With the fast rescue on (PBX_STRANDED_AFTER), a caller whose StasisStart reaches us late
        # was moved on by another engine meanwhile; without it, nobody else would take that caller.
        self.lateness = Lateness() if disown_late else None
        # Serves callback requests; sees its own channels' events and device states first.
        self.callbacks = callbacks

    async def run(self) -> None:
        beat = asyncio.create_task(self.heartbeat(), name="heartbeat")
        try:
            async for event in self.events:
                self.dispatch(event)
        finally:
            beat.cancel()

    async def heartbeat(self, wall: Callable[[], float] = time.time) -> None:
        """Tells the dialplan we are alive (contract.alive_variable): only then does it carry a
        plan on after a ring without us (PBX_CARRY); a caller of a dead or frozen engine goes back
        to Stasis, where a survivor takes it over. One request every BEAT_EVERY, not per call."""
        name = dp.alive_variable(self.run_id)
        try:
            while True:
                if self.events.connected.is_set():
                    try:
                        await self.ari.post("/asterisk/variable", variable=name, value=str(int(wall())))
                    except Exception as exc:  # the next beat tries again; a stale one only costs a Stasis entry
                        log.debug("heartbeat: %s", exc)
                await asyncio.sleep(dp.BEAT_EVERY)
        except asyncio.CancelledError:
            # Stopping: from now on our callers come back to Stasis after a ring, where the
            # others rescue them, instead of being carried on with nobody listening.
            try:
                await asyncio.wait_for(self.ari.post("/asterisk/variable", variable=name, value=""), 1.0)
            except Exception as exc:
                log.debug("heartbeat: could not clear it: %s", exc)
            raise

    def dispatch(self, event: dict) -> None:
        kind = event.get("type", "")
        self.event_counts[kind] = self.event_counts.get(kind, 0) + 1
        late = self.lateness.of(event) if self.lateness else 0.0  # every event keeps the base fresh
        if kind == "CallBroadcast":
            self.spawn(self._claim(event), "claim")
            return
        if self.callbacks is not None and self.callbacks.take(event):
            return
        if kind == "StasisStart" and late > STALE_AFTER:
            self._disown(event["channel"]["id"], late)
            return
        if kind == "StasisStart" and event["channel"]["id"] not in self.calls:
            self._start(event)
            return
        for cid in channel_ids(event):
            call = self.calls.get(cid)
            if call is not None:
                call.deliver(event)
                return

    def _disown(self, channel_id: str, late: float) -> None:
        """We were frozen past the time others rescue our callers: this one is theirs now."""
        log.warning("channel %s: its StasisStart reached us %.1f s late (this engine was frozen or stuck); "
                    "another engine rescues such a caller, so we leave it alone", channel_id, late)
        self.calls.pop(channel_id, None)
        task = self.flows.pop(channel_id, None)
        if task is not None:
            task.cancel()

    async def _claim(self, event: dict) -> None:
        """Offered a call: claim it unless we are full with new calls. A claim another engine won
        is refused by Asterisk; a call nobody claims goes on in the dialplan."""
        channel = event.get("channel") or {}
        channel_id = channel.get("id", "")
        if dp.offered_new_call(channel) and self.max_calls and len(self.calls) >= self.max_calls:
            self.refused += 1
            log.warning("%d calls in progress (max %d): call %s left to other engines or the dialplan",
                        len(self.calls), self.max_calls, channel_id)
            return
        try:
            await self.ari.post("/events/claim", channelId=channel_id, application=self.ari.app)
        except AriError as exc:
            if exc.status not in (404, 409):  # 404: another engine claimed it first
                log.error("call %s: claim failed: %s", channel_id, exc)

    def _start(self, event: dict) -> None:
        channel = event["channel"]
        entry = dp.Entry.from_args(event.get("args") or [])
        call = CallChannel(self.ari, channel, self.clock)
        self.calls[call.id] = call
        if entry.what == "direct":
            coro = self._new_call(call, entry.extension)
        elif entry.what in ("dialed", "offered"):
            coro = self._take_over(call, entry)
        else:
            log.warning("channel %s entered Stasis with args %s: not ours, hanging up", call.id, event.get("args"))
            coro = call.hangup()
        self.flows[call.id] = self.spawn(self._guard(call, coro, dp.fallback_for(entry)), f"call-{call.id}")

    def spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _guard(self, call: CallChannel, coro, fallback: dict) -> None:
        try:
            await coro
        except Exception:
            # A flow handles its own failures; this is one that never got going (a bug, a bad
            # plan). The dialplan still rings the employee rather than leave dead air.
            log.exception("channel %s: unexpected error; handing it to the dialplan fallback", call.id)
            if not call.gone:
                await self.send_on(call.id, **fallback)
        finally:
            if self.calls.get(call.id) is call:
                del self.calls[call.id]
                self.flows.pop(call.id, None)

    async def send_on(self, channel_id: str, context: str, extension: str, **where) -> None:
        """Puts a caller we cannot serve back in the dialplan (``where``: priority or label)."""
        try:
            await self.ari.post(f"/channels/{channel_id}/continue", context=context, extension=extension, **where)
        except AriError as exc:
            if exc.status not in (404, 409):  # the caller hung up, or someone else moved it already
                log.error("channel %s: could not send it on to %s,%s (%s)", channel_id, context, extension, exc)

    async def _new_call(self, call: CallChannel, extension: str) -> None:
        policy = self.policy()
        # The caller already hears ringing (pbx-direct's Ringing()); the CRM has its own deadline.
        crm = await crm_lookup(self.crm, policy, call.caller)  # never raises
        context = CallContext(extension=extension, caller=call.caller, at=self.clock(), crm=crm.rule, crm_note=crm.note)
        plan = await vet_plan(decide(policy, context, self.rng), getattr(self.callbacks, "guard", None), policy, call.id)
        await CallFlow(call, plan, self.journal, self.clock, self.ari.app, self._requests(), carry_as=self.run_id).run()

    async def _take_over(self, call: CallChannel, entry: dp.Entry) -> None:
        """A caller back from a ring whose owner is gone (or is us, restarted): the plan and the
        cursor are on the channel."""
        state = await call.get_vars(dp.PLAN, dp.CURSOR)
        if not (state[dp.PLAN] and state[dp.CURSOR]):
            log.warning("channel %s came back with no plan of ours; the dialplan fallback takes it", call.id)
            return await self.send_on(call.id, **dp.fallback_for(entry))
        self.taken_over += 1
        flow = CallFlow(call, decode_plan(state[dp.PLAN]), self.journal, self.clock, self.ari.app, self._requests(),
                        Cursor.decode(state[dp.CURSOR]), carry_as=self.run_id)
        await flow.resume(entry)

    def _requests(self):
        return self.callbacks  # it stores a request and looks at it at once

    async def drain(self, timeout: float = 5.0) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=timeout)
