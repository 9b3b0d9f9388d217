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
import time
from typing import Awaitable, Callable

from ..ari import AriError
from .. import contract as dp
from .engine import EVENT_TYPES, CallEngine

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 10.0


class Sweeper:
    """``on_listing`` (optional) gets the ids of the channels Asterisk has after each listing
    (every ``interval``): the reconciler ends the journal's calls whose channel is gone.

    ``stranded_after``: a caller seen waiting at the same place on two listings that far apart
    or more is rescued. Its owner moves a caller on within milliseconds (the CRM's deadline is
    0.5 s), so one still there 1.5 s later has an owner that is dead or wedged (SIGSTOP, a stuck
    loop: its websocket is still up, so Asterisk even sends callers back to it). Listing every
    ``look_every`` (0.5 s) finds such a caller within 0.5 s; it is then looked at alone (one
    GET of its channel) the moment it is due, not at the next listing: rescued ``stranded_after``
    + at most ``look_every`` after it began to wait (~2 s), instead of two sweeps (~20 s).
    0 keeps the plain rule: seen on two listings in a row."""

    def __init__(self, engine: CallEngine, interval: float = SWEEP_INTERVAL,
                 on_listing: Callable[[set[str]], Awaitable[None]] | None = None, stranded_after: float = 0.0,
                 clock: Callable[[], float] = time.monotonic):
        self.engine = engine
        self.interval = interval
        self.on_listing = on_listing
        self.stranded_after = stranded_after
        self.look_every = min(interval, stranded_after / 3) if stranded_after else interval
        self.clock = clock
        self._seen: dict[str, tuple[tuple, float]] = {}  # channel id → (where it waited, first seen there)
        self._due: dict[str, float] = {}  # channel id → when it is stranded if it still waits there
        self.rescued = 0
        engine.events.on_connect = self.on_connect

    async def run(self) -> None:
        listed_at = self.clock()
        while True:
            look_at = self.clock() + self.look_every
            while (due := min(self._due.values(), default=look_at)) < look_at:  # a caller due before the next look
                await asyncio.sleep(max(0.0, due - self.clock()))
                if self.engine.events.connected.is_set():
                    try:
                        await self.rescue_due()
                    except Exception:
                        log.exception("the look at callers due for rescue failed")
                else:
                    self._due.clear()
            await asyncio.sleep(max(0.0, look_at - self.clock()))
            if self.engine.events.connected.is_set():
                full = self.clock() - listed_at >= self.interval
                try:
                    await self.sweep(listing=full)
                except Exception:
                    log.exception("the sweep for callers left in Stasis failed")
                if full:
                    listed_at = self.clock()

    async def rescue_due(self) -> None:
        """Looks again at the callers whose patience has run out since the last listing, each
        alone: one still waiting where it was is rescued now rather than at the next listing."""
        engine, now = self.engine, self.clock()
        for cid in [c for c, due in self._due.items() if due <= now]:
            del self._due[cid]
            try:
                channel = await engine.ari.get(f"/channels/{cid}")
            except AriError:  # gone (404): the caller hung up or was moved on
                self._seen.pop(cid, None)
                continue
            waiting = dp.waiting_in_stasis(channel or {})
            before = self._seen.get(cid)
            if waiting is None or before is None or before[0] != waiting.where or cid in engine.calls:
                continue  # moved on meanwhile: the next listing sees where it is now
            del self._seen[cid]
            await self._rescue(waiting)

    async def on_connect(self) -> None:
        engine = self.engine
        try:
            await engine.ari.request("PUT", f"/applications/{engine.ari.app}/eventFilter",
                                     {"allowed": [{"type": t} for t in EVENT_TYPES]})
        except AriError as exc:  # an older Asterisk: we get every event, which is only slower
            log.warning("cannot narrow the events Asterisk sends us: %s", exc)
        await self.sweep(reconnected=True)

    async def sweep(self, reconnected: bool = False, listing: bool = True) -> None:
        engine = self.engine
        try:
            channels = await engine.ari.get("/channels") or []
        except AriError as exc:
            log.error("cannot list channels to look for abandoned callers: %s", exc)
            return
        listed = {ch["id"]: ch for ch in channels}
        if reconnected:
            self._end_vanished(listed)
        now = self.clock()
        seen, stranded, due = {}, [], {}
        for cid, channel in listed.items():
            waiting = dp.waiting_in_stasis(channel)
            if waiting is None or cid in engine.calls or cid in getattr(engine.callbacks, "attempts", {}):
                continue
            before = self._seen.get(cid)
            since = before[1] if before is not None and before[0] == waiting.where else now
            seen[cid] = (waiting.where, since)
            ours_now = reconnected and waiting.app == engine.ari.app
            # A callback leg rings the employee from Stasis: only the old rule (a whole sweep) for it.
            patience = self.interval if waiting.args[:1] == (dp.CALLBACK_ARG,) else self.stranded_after
            if ours_now or (before is not None and before[0] == waiting.where and now - since >= patience):
                stranded.append(waiting)
                seen.pop(cid)
            elif patience == self.stranded_after and patience > 0:
                due[cid] = since + patience
        self._seen, self._due = seen, due
        for waiting in stranded:
            await self._rescue(waiting)
        if self.on_listing is not None and listing:
            await self.on_listing(set(listed))

    async def _rescue(self, waiting: dp.Waiting) -> None:
        engine = self.engine
        if waiting.args[:1] == (dp.CALLBACK_ARG,):
            # An employee's callback leg whose engine is gone: end it; the request's lease runs
            # out and the callback is tried again.
            log.warning("channel %s: a callback left in %s; hanging it up", waiting.channel["id"], waiting.app)
            try:
                await engine.ari.delete(f"/channels/{waiting.channel['id']}")
            except AriError:
                pass
            return
        log.warning("channel %s: left waiting in %s; offering it to the engines again",
                    waiting.channel["id"], ",".join(waiting.where))
        self.rescued += 1
        await engine.send_on(waiting.channel["id"], **dp.way_back(waiting))

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

