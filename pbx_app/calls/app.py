"""The Stasis app: takes each event from the websocket and hands it to the call it belongs to.
New direct calls get their own flow task; a caller coming back from the dialplan to a flow we
no longer have (the app restarted) is resumed from the state kept on the channel.

Each time the events websocket (re)connects, the app lists Asterisk's channels: callers sitting in
our Stasis app with nobody driving them (the app died mid-announcement, or events were lost while
disconnected) are picked up again from their channel state, and flows whose channel vanished
(Asterisk restarted) are ended; the same sweep runs every 15 s for callers stranded in Stasis
while connected. Past ``max_calls`` calls in progress a new call is handed back to
the dialplan's own fallback rather than risk every call."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Callable

from ..ari import AriClient, AriError, EventStream
from ..crm import CrmProvider
from ..crm import lookup as crm_lookup
from ..history.events import CallStarted, Journal, MemoryJournal
from ..policy import Policy
from ..routing import Plan
from ..routing.decide import CallContext, decide
from .channel import CallChannel, CallerGone
from .flow import CallFlow, Cursor

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


# Every so often the app lists Asterisk's channels for callers left in Stasis with no flow.
SWEEP_INTERVAL = 15.0
STUCK_AFTER = 5.0  # seconds after its flow ended that a channel still in Stasis counts as stranded
MAX_RECOVERIES = 2  # then the dialplan fallback takes the caller
MAX_REMEMBERED = 50_000

# The ARI event types the flows read. Asterisk drops the others before they reach our websocket
# (the app's eventFilter, set on every connect): less JSON for Asterisk to write and for us to read.
# A feature that needs another event type adds it here.
EVENT_TYPES = (
    "StasisStart", "StasisEnd", "Dial", "ChannelHangupRequest", "ChannelDestroyed",
    "PlaybackStarted", "PlaybackFinished", "ChannelVarset",
)
# Dial and bridging set dozens of variables on the caller (DIALSTATUS, BRIDGEPEER… ~50 a call),
# each one a ChannelVarset event; the flows read only these. The rest are dropped unparsed.
WANTED_VARIABLES = re.compile(r'"variable"\s*:\s*"PBX_VM_')


def unwanted_varset(raw: str) -> bool:
    return '"ChannelVarset"' in raw and WANTED_VARIABLES.search(raw) is None


def stasis_args(channel: dict, app: str) -> list[str] | None:
    """The Stasis() arguments of a listed channel that is executing ``Stasis(app,...)``, else None."""
    dialplan = channel.get("dialplan") or {}
    if dialplan.get("app_name", "").lower() != "stasis":
        return None
    name, *args = (dialplan.get("app_data") or "").split(",")
    return args if name == app else None


def channel_ids(event: dict) -> list[str]:
    """The channels an event concerns, in the order we should deliver it."""
    ids = []
    for key in ("channel", "caller"):
        ch = event.get(key)
        if isinstance(ch, dict) and "id" in ch:
            ids.append(ch["id"])
    playback = event.get("playback")
    if isinstance(playback, dict):
        uri = playback.get("target_uri", "")
        if uri.startswith("channel:"):
            ids.append(uri[len("channel:") :])
    return ids


class StasisApp:
    def __init__(
        self,
        ari: AriClient,
        policy: Callable[[], Policy],
        journal: Journal | None = None,
        clock: Callable[[], datetime] = _utcnow,
        crm: CrmProvider | None = None,
    ):
        self.ari = ari
        self.policy = policy  # called once per new call: a reload never touches calls in flight
        self.crm = crm  # None: the policy's static CRM mapping only
        self.journal = journal or MemoryJournal()
        self.clock = clock
        self.calls: dict[str, CallChannel] = {}
        self.tasks: set[asyncio.Task] = set()
        self.events = EventStream(ari, on_connect=self._on_connect)
        self.events.skip = unwanted_varset
        self.max_calls = 0  # calls in progress before new ones go to the dialplan fallback; 0: no limit
        self.refused = 0
        self.event_counts: dict[str, int] = {}  # ARI events received, by type (for /metrics)
        self._flows: dict[str, asyncio.Task] = {}
        # Channels recovered from a listing: their StasisStart may still be on its way; drop it once.
        self._replayed: dict[str, list[str]] = {}
        self.sweep_interval = SWEEP_INTERVAL
        self._ended: OrderedDict[str, float] = OrderedDict()  # channel id → when its flow ended
        self._recoveries: dict[str, int] = {}

    async def run(self) -> None:
        janitor = asyncio.create_task(self._janitor())
        try:
            async for event in self.events:
                self.dispatch(event)
        finally:
            janitor.cancel()

    def dispatch(self, event: dict) -> None:
        kind = event.get("type")
        self.event_counts[kind] = self.event_counts.get(kind, 0) + 1
        if kind == "StasisStart":
            channel = event["channel"]
            if channel["id"] not in self.calls:
                self._start(event)
                return
            if self._replayed.get(channel["id"]) == list(event.get("args") or []):
                del self._replayed[channel["id"]]
                return
        elif kind in ("StasisEnd", "ChannelDestroyed"):
            self._replayed.pop((event.get("channel") or {}).get("id"), None)
        for cid in channel_ids(event):
            call = self.calls.get(cid)
            if call is not None:
                call.deliver(event)
                return

    def _start(self, event: dict, recovered: bool = False) -> None:
        channel = event["channel"]
        args = list(event.get("args") or [])
        what = args[0] if args else ""
        if what == "direct" and not recovered and self.max_calls and len(self.calls) >= self.max_calls:
            self.refused += 1
            log.warning("%d calls in progress (max %d): channel %s goes to the dialplan fallback",
                        len(self.calls), self.max_calls, channel["id"])
            self._spawn(self._to_fallback(channel, args[1] if len(args) > 1 else ""), f"refuse-{channel['id']}")
            return
        call = CallChannel(self.ari, channel, self.clock)
        self.calls[call.id] = call
        if recovered:
            coro = self._recover(call, what, args)
        elif what == "direct" and len(args) >= 2:
            coro = self._new_call(call, args[1])
        elif what in ("dialed", "voicemail"):
            coro = self._resume(call, what, args[1:])
        else:
            log.warning("channel %s entered Stasis with args %s: not ours, hanging up", call.id, args)
            coro = call.hangup()
        extension = args[1] if what == "direct" and len(args) > 1 else ""
        self._flows[call.id] = self._spawn(self._guard(call, coro, channel, extension), f"call-{call.id}")

    def _spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _guard(self, call: CallChannel, coro, channel: dict, extension: str) -> None:
        try:
            await coro
        except Exception:
            # A flow handles its own failures; this is one that never got going (a bug, a bad
            # plan). The dialplan's fallback still rings the employee rather than leave dead air.
            log.exception("channel %s: unexpected error; handing it to the dialplan fallback", call.id)
            if not call.gone:
                await self._to_fallback(channel, extension)
        finally:
            # A flow restarted after a reconnect has put a new CallChannel under the same id.
            if self.calls.get(call.id) is call:
                del self.calls[call.id]
                self._flows.pop(call.id, None)
                self._replayed.pop(call.id, None)
                self._ended[call.id] = asyncio.get_running_loop().time()
                if len(self._ended) > MAX_REMEMBERED:
                    self._ended.popitem(last=False)

    async def _to_fallback(self, channel: dict, extension: str) -> None:
        """Sends a caller to the app-down branch of the context it came from, as if the app were
        not running: in pbx-direct the dialplan rings the employee itself."""
        dialplan = channel.get("dialplan") or {}
        context, exten = dialplan.get("context") or "pbx-direct", dialplan.get("exten") or extension
        try:
            await self.ari.post(f"/channels/{channel['id']}/continue", context=context, extension=exten, label="app-down")
        except AriError as exc:
            if exc.status == 404:
                return  # the caller hung up meanwhile
            log.error("channel %s: could not hand it to the dialplan fallback (%s); busy", channel["id"], exc)
            try:
                await self.ari.delete(f"/channels/{channel['id']}", reason="busy")
            except AriError:
                pass

    async def _on_connect(self) -> None:
        """Every (re)connect: end the flows whose channel is gone, pick up the callers left in
        our Stasis app with nobody driving them."""
        try:
            await self.ari.request(
                "PUT", f"/applications/{self.ari.app}/eventFilter", {"allowed": [{"type": t} for t in EVENT_TYPES]}
            )
        except AriError as exc:  # an older Asterisk: we get every event, which is only slower
            log.warning("cannot narrow the events Asterisk sends us: %s", exc)
        await self._sweep(reconnected=True)

    async def _janitor(self) -> None:
        """Now and then, the same sweep as on a reconnect: a caller can also be stranded in Stasis
        while we are connected (a hangup refused by an overloaded Asterisk, a lost event)."""
        while True:
            await asyncio.sleep(self.sweep_interval)
            if self.events.connected.is_set():
                try:
                    await self._sweep()
                except Exception:
                    log.exception("the sweep for callers left in Stasis failed")

    async def _sweep(self, reconnected: bool = False) -> None:
        try:
            channels = await self.ari.get("/channels")
        except AriError as exc:
            log.error("cannot list channels to pick up calls in progress: %s", exc)
            return
        listed = {ch["id"]: ch for ch in channels or []}
        for cid, call in list(self.calls.items()) if reconnected else ():
            channel = listed.get(cid)
            if channel is None:
                # Hung up (or Asterisk restarted) while we were not listening.
                call.deliver({"type": "ChannelDestroyed", "channel": {"id": cid}, "cause": 0})
            elif stasis_args(channel, self.ari.app) is not None:
                # Sitting in Stasis: the events it waits for may have been lost; start it over
                # from the state on its channel.
                task = self._flows.pop(cid, None)
                del self.calls[cid]
                if task is not None:
                    task.cancel()
        now = asyncio.get_running_loop().time()
        recovered = 0
        for cid, channel in listed.items():
            args = stasis_args(channel, self.ari.app)
            if args is None or cid in self.calls:
                continue
            ended = self._ended.get(cid)
            if ended is not None and now - ended < STUCK_AFTER:
                continue  # its flow just ended; the hangup is on its way
            extension = args[1] if args[:1] == ["direct"] and len(args) > 1 else ""
            if ended is not None or self._recoveries.get(cid, 0) >= MAX_RECOVERIES:
                # Its flow is over (or keeps failing) yet the caller still waits in Stasis.
                log.error("channel %s: still in Stasis with no flow; handing it to the dialplan fallback", cid)
                self._spawn(self._to_fallback(channel, extension), f"fallback-{cid}")
                continue
            self._recoveries[cid] = self._recoveries.get(cid, 0) + 1
            self._replayed[cid] = args
            self._start({"type": "StasisStart", "channel": channel, "args": args}, recovered=True)
            recovered += 1
        if recovered:
            log.warning("picked up %d call(s) left in Stasis without a flow", recovered)
        for remembered in (self._recoveries, self._ended):
            for cid in [cid for cid in remembered if cid not in listed]:
                del remembered[cid]

    async def _recover(self, call: CallChannel, what: str, args: list[str]) -> None:
        """A caller found in our Stasis app with no flow: carry it on from its channel state."""
        if what in ("dialed", "voicemail"):
            return await self._resume(call, what, args[1:])
        if what != "direct" or len(args) < 2:
            log.warning("channel %s in Stasis with args %s: not ours, hanging up", call.id, args)
            return await call.hangup()
        try:
            call_id = await call.get_var("PBX_CALL_ID")
            plan_json = await call.get_var("PBX_PLAN")
        except AriError as exc:
            log.error("channel %s: cannot read its state (%s); busy", call.id, exc)
            return await call.hangup("busy")
        if not (call_id and plan_json):
            return await self._new_call(call, args[1])  # the app died before it took the call
        # Died before the first ring went out: start the plan over; the call was already journalled.
        log.info("call %s: restarting its plan from the top", call_id)
        flow = CallFlow(call, Plan.from_json(plan_json), call_id, _AlreadyStarted(self.journal), self.clock)
        await flow.run()

    async def _new_call(self, call: CallChannel, extension: str) -> None:
        policy = self.policy()
        now = self.clock()
        # Ringing first: the CRM may take up to its deadline, and the caller must not hear silence.
        try:
            await call.ring()
        except (CallerGone, AriError) as exc:
            log.info("channel %s: could not start ringing (%s); the flow will find out", call.id, exc)
        crm = await crm_lookup(self.crm, policy, call.caller)  # bounded by the CRM deadline, never raises
        context = CallContext(extension=extension, caller=call.caller, at=now, crm=crm.rule, crm_note=crm.note)
        plan = decide(policy, context, random.Random())
        flow = CallFlow(call, plan, call_id=uuid.uuid4().hex[:12], journal=self.journal, clock=self.clock)
        await flow.run()

    async def _resume(self, call: CallChannel, what: str, args: list[str]) -> None:
        try:
            call_id = await call.get_var("PBX_CALL_ID")
            plan_json = await call.get_var("PBX_PLAN")
            cursor = await call.get_var("PBX_CURSOR")
        except AriError as exc:
            log.error("channel %s: cannot read its state (%s); busy", call.id, exc)
            await call.hangup("busy")
            return
        if not (call_id and plan_json and cursor):
            log.warning("channel %s came back with no state of ours; busy", call.id)
            await call.hangup("busy")
            return
        await call.subscribe()
        flow = CallFlow(call, Plan.from_json(plan_json), call_id, self.journal, self.clock)
        await flow.resume(Cursor.decode(cursor), args, what)

    async def drain(self, timeout: float = 5.0) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=timeout)


class _AlreadyStarted:
    """The journal minus the CallStarted of a call that is started over."""

    def __init__(self, journal: Journal):
        self.journal = journal

    async def record(self, event) -> None:
        if not isinstance(event, CallStarted):
            await self.journal.record(event)
