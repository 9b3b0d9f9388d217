"""Callers left waiting in Stasis with nobody driving them, put back on their way.

In this design a caller sits in an engine's Stasis app only for the moment between two steps;
the ringing, the announcements and the mailbox all happen in the dialplan. So a caller found in
Stasis (ours or any engine's) on two listings in a row has been abandoned: its engine died
between claiming it and sending it on, or its events were lost. Such a caller is sent back to
where the dialplan asks the engines again (contract.way_back), and whoever claims it carries the
plan on from the channel. On a (re)connect the engine does the same at once for callers in its
own app that it has no flow for, and ends the flows whose channel vanished meanwhile."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from ..ari import AriError
from .. import contract as dp
from .engine import EVENT_TYPES, CallEngine

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 10.0


class Sweeper:
    """``on_listing`` (optional) gets the ids of the channels Asterisk has after each listing:
    the reconciler ends the journal's calls whose channel is gone."""

    def __init__(self, engine: CallEngine, interval: float = SWEEP_INTERVAL,
                 on_listing: Callable[[set[str]], Awaitable[None]] | None = None):
        self.engine = engine
        self.interval = interval
        self.on_listing = on_listing
        self._seen: dict[str, tuple] = {}  # channel id → where it waited at the last listing
        self.rescued = 0
        engine.events.on_connect = self.on_connect

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.engine.events.connected.is_set():
                try:
                    await self.sweep()
                except Exception:
                    log.exception("the sweep for callers left in Stasis failed")

    async def on_connect(self) -> None:
        engine = self.engine
        try:
            await engine.ari.request("PUT", f"/applications/{engine.ari.app}/eventFilter",
                                     {"allowed": [{"type": t} for t in EVENT_TYPES]})
        except AriError as exc:  # an older Asterisk: we get every event, which is only slower
            log.warning("cannot narrow the events Asterisk sends us: %s", exc)
        await self.sweep(reconnected=True)

    async def sweep(self, reconnected: bool = False) -> None:
        engine = self.engine
        try:
            channels = await engine.ari.get("/channels") or []
        except AriError as exc:
            log.error("cannot list channels to look for abandoned callers: %s", exc)
            return
        listed = {ch["id"]: ch for ch in channels}
        if reconnected:
            self._end_vanished(listed)
        seen, stranded = {}, []
        for cid, channel in listed.items():
            waiting = dp.waiting_in_stasis(channel)
            if waiting is None or cid in engine.calls or cid in getattr(engine.callbacks, "attempts", {}):
                continue
            seen[cid] = waiting.where
            ours_now = reconnected and waiting.app == engine.ari.app
            if ours_now or self._seen.get(cid) == waiting.where:
                stranded.append(waiting)
        self._seen = seen
        for waiting in stranded:
            if waiting.args[:1] == (dp.CALLBACK_ARG,):
                # An employee's callback leg whose engine is gone: end it; the request's lease runs
                # out and the callback is tried again.
                log.warning("channel %s: a callback left in %s; hanging it up", waiting.channel["id"], waiting.app)
                try:
                    await engine.ari.delete(f"/channels/{waiting.channel['id']}")
                except AriError:
                    pass
                continue
            log.warning("channel %s: left waiting in %s; offering it to the engines again",
                        waiting.channel["id"], ",".join(waiting.where))
            self.rescued += 1
            await engine.send_on(waiting.channel["id"], **dp.way_back(waiting))
        if self.on_listing is not None:
            await self.on_listing(set(listed))

    def _end_vanished(self, listed: dict[str, dict]) -> None:
        """Flows whose caller hung up (or whose Asterisk restarted) while we were not listening;
        a flow whose caller waits in our Stasis lost the event it waited for: it is started over
        from the channel by whoever claims the caller next."""
        engine = self.engine
        for cid, call in list(engine.calls.items()):
            channel = listed.get(cid)
            if channel is None:
                call.deliver({"type": "ChannelDestroyed", "channel": {"id": cid}, "cause": 0})
                continue
            waiting = dp.waiting_in_stasis(channel)
            if waiting is not None and waiting.app == engine.ari.app:
                task = engine.flows.pop(cid, None)
                del engine.calls[cid]
                if task is not None:
                    task.cancel()
