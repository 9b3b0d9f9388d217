"""The Stasis app: takes each event from the websocket and hands it to the call it belongs to.
New direct calls get their own flow task; a caller coming back from the dialplan to a flow we
no longer have (the app restarted) is resumed from the state kept on the channel."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from datetime import datetime, timezone
from typing import Callable

from ..ari import AriClient, AriError, EventStream
from ..crm import CrmProvider
from ..crm import lookup as crm_lookup
from ..history.events import Journal, MemoryJournal
from ..policy import Policy
from ..routing import Plan
from ..routing.decide import CallContext, decide
from .channel import CallChannel
from .flow import CallFlow, Cursor

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


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
        self.events = EventStream(ari)

    async def run(self) -> None:
        async for event in self.events:
            self.dispatch(event)

    def dispatch(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "StasisStart":
            channel = event["channel"]
            if channel["id"] not in self.calls:
                self._start(event)
                return
        for cid in channel_ids(event):
            call = self.calls.get(cid)
            if call is not None:
                call.deliver(event)
                return

    def _start(self, event: dict) -> None:
        channel = event["channel"]
        args = list(event.get("args") or [])
        what = args[0] if args else ""
        call = CallChannel(self.ari, channel, self.clock)
        self.calls[call.id] = call
        if what == "direct" and len(args) >= 2:
            coro = self._new_call(call, args[1])
        elif what in ("dialed", "voicemail"):
            coro = self._resume(call, what, args[1:])
        else:
            log.warning("channel %s entered Stasis with args %s: not ours, hanging up", call.id, args)
            coro = call.hangup()
        task = asyncio.create_task(self._guard(call, coro), name=f"call-{call.id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _guard(self, call: CallChannel, coro) -> None:
        try:
            await coro
        except Exception:
            log.exception("channel %s: unexpected error", call.id)
        finally:
            self.calls.pop(call.id, None)

    async def _new_call(self, call: CallChannel, extension: str) -> None:
        policy = self.policy()
        now = self.clock()
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
