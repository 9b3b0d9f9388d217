"""One caller channel seen from its flow: the ARI operations we do on it and the events that
reach it, in order, through its own queue."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from ..ari import AriClient, AriError
from .. import contract as dp

log = logging.getLogger(__name__)


class CallerGone(Exception):
    """The caller hung up (or the channel vanished) while we waited for something else."""


@dataclass
class DialWatch:
    """Who answered the ring step under way, as the dialplan reported it when the ring ended."""

    answered_peer: str | None = None
    answered_at: datetime | None = None
    talked_ms: int = 0  # how long the answered leg lasted (ANSWEREDTIME_MS)


def creation_time(channel: dict, default: datetime) -> datetime:
    """When Asterisk created the channel (its snapshot's creationtime): the same for every engine
    that ever looks at the call, so a restarted or second engine writes the same start time."""
    text = channel.get("creationtime") or ""
    try:
        # fromisoformat reads Asterisk's 2026-11-29T08:40:01.000+0000 some 50 times faster than strptime.
        created = datetime.fromisoformat(text)
    except ValueError:
        return default
    return created.astimezone(timezone.utc) if created.tzinfo is not None else default


class CallChannel:
    """ARI operations on one channel; events for it arrive through ``deliver``."""

    def __init__(self, ari: AriClient, channel: dict, clock: Callable[[], datetime]):
        self.ari = ari
        self.id: str = channel["id"]
        self.name: str = channel.get("name", "")
        self.caller: str = (channel.get("caller") or {}).get("number", "") or ""
        self.created: datetime = creation_time(channel, clock())
        self.clock = clock
        self.queue: asyncio.Queue[dict] = asyncio.Queue()
        self.gone = False
        self.destroyed = False  # nothing more can come: no point draining
        self.dial = DialWatch()

    # ---- events -------------------------------------------------------------------------------

    def deliver(self, event: dict) -> None:
        self.queue.put_nowait(event)

    async def next_event(self, timeout: float | None = None) -> dict:
        """The next event for this channel; raises CallerGone once the caller has hung up."""
        if self.gone:
            raise CallerGone()
        event = await asyncio.wait_for(self.queue.get(), timeout)
        self._track_answer(event)
        if event.get("type") in ("ChannelHangupRequest", "ChannelDestroyed"):
            self.gone = True
            self.destroyed = event.get("type") == "ChannelDestroyed"
            raise CallerGone()
        return event

    def _track_answer(self, event: dict) -> None:
        report = dp.report(event)
        if report is not None and report[0] == dp.ANSWERED and self.dial.answered_peer is None:
            peer, talked_ms = dp.answered(report[1])
            self.dial.answered_peer = peer
            self.dial.talked_ms = talked_ms
            self.dial.answered_at = self.clock() - timedelta(milliseconds=talked_ms)

    async def drain(self, seconds: float = 2.0) -> list[dict]:
        """After the caller hung up, the h extension may still report: what is queued, or
        arrives within ``seconds``, up to the channel's destruction."""
        events: list[dict] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self.destroyed and loop.time() < deadline:
            try:
                event = await asyncio.wait_for(self.queue.get(), deadline - loop.time())
            except TimeoutError:
                break
            self._track_answer(event)
            events.append(event)
            if event.get("type") == "ChannelDestroyed":
                self.destroyed = True
        return events

    # ---- operations ---------------------------------------------------------------------------

    async def subscribe(self) -> None:
        """Keeps our events flowing while the caller is out in the dialplan (ringing, voicemail)."""
        try:
            await self.ari.post(f"/applications/{self.ari.app}/subscription", eventSource=f"channel:{self.id}")
        except AriError as exc:
            if exc.status in (404, 422):  # no such channel (any more): the caller hung up
                self.gone = True
                raise CallerGone() from None
            raise

    async def set_vars(self, variables: dict[str, str]) -> None:
        """All of them in one request (Asterisk 22.10's POST /channels/{id}/variables)."""
        await self._op("POST", f"/channels/{self.id}/variables", {"variables": variables})

    async def get_vars(self, *names: str) -> dict[str, str]:
        """Several variables in one request; a variable that is not set comes back as ""."""
        try:
            result = await self.ari.get(f"/channels/{self.id}/variables", variables=",".join(names))
        except AriError as exc:
            if exc.status == 404:
                self.gone = True
                raise CallerGone() from None
            raise
        found = (result or {}).get("variables") or {}
        return {name: found.get(name) or "" for name in names}

    async def continue_to(self, context: str, extension: str, priority: int = 1) -> None:
        self.dial = DialWatch()
        await self._op("POST", f"/channels/{self.id}/continue", context=context, extension=extension, priority=priority)

    async def hangup(self, reason: str = "normal") -> None:
        try:
            await self.ari.delete(f"/channels/{self.id}", reason=reason)
        except AriError as exc:
            if exc.status != 404:  # already gone is fine
                raise

    async def _op(self, method: str, path: str, body: Any = None, **params: Any) -> None:
        try:
            await self.ari.request(method, path, body, **params)
        except AriError as exc:
            if exc.status == 404:  # the channel is gone: the caller hung up under us
                self.gone = True
                raise CallerGone() from None
            raise
