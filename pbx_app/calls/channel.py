"""One caller channel seen from its flow: the ARI operations we do on it and the events that
reach it, in order, through its own queue."""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from ..ari import AriClient, AriError

log = logging.getLogger(__name__)

_playback_ids = itertools.count(1)


class CallerGone(Exception):
    """The caller hung up (or the channel vanished) while we waited for something else."""


@dataclass
class Reentry:
    """The caller came back to Stasis from the dialplan: ``what`` is dialed or voicemail."""

    what: str
    args: list[str]


@dataclass
class DialWatch:
    """What the Dial events told us about the legs of one ring step."""

    peers: dict[str, str] = field(default_factory=dict)  # peer channel name → last dialstatus
    answered_peer: str | None = None
    answered_at: datetime | None = None
    first_invite_at: datetime | None = None


class CallChannel:
    """ARI operations on one channel; events for it arrive through ``deliver``."""

    def __init__(self, ari: AriClient, channel: dict, clock: Callable[[], datetime]):
        self.ari = ari
        self.id: str = channel["id"]
        self.name: str = channel.get("name", "")
        self.caller: str = (channel.get("caller") or {}).get("number", "") or ""
        self.language: str = channel.get("language", "en") or "en"
        self.clock = clock
        self.queue: asyncio.Queue[dict] = asyncio.Queue()
        self.gone = False
        self.ringing = False
        self.dial = DialWatch()

    # ---- events -------------------------------------------------------------------------------

    def deliver(self, event: dict) -> None:
        self.queue.put_nowait(event)

    async def next_event(self, timeout: float | None = None) -> dict:
        """The next event for this channel; raises CallerGone once the caller has hung up."""
        if self.gone:
            raise CallerGone()
        event = await asyncio.wait_for(self.queue.get(), timeout)
        kind = event.get("type")
        if kind == "Dial":
            self._track_dial(event)
        elif kind in ("ChannelHangupRequest", "ChannelDestroyed"):
            self.gone = True
            raise CallerGone()
        return event

    def _track_dial(self, event: dict) -> None:
        peer = (event.get("peer") or {}).get("name", "")
        status = event.get("dialstatus", "")
        if peer and peer not in self.dial.peers and self.dial.first_invite_at is None:
            self.dial.first_invite_at = self.clock()
        self.dial.peers[peer] = status
        if status == "ANSWER" and self.dial.answered_peer is None:
            self.dial.answered_peer = peer
            self.dial.answered_at = self.clock()

    async def wait_reentry(self) -> Reentry:
        """Waits until the dialplan hands the caller back to Stasis."""
        while True:
            event = await self.next_event()
            if event.get("type") == "StasisStart":
                args = list(event.get("args") or [])
                return Reentry(what=args[0] if args else "", args=args[1:])

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

    async def ring(self) -> None:
        """The caller hears ringing. Once is enough: the app starts it before the CRM lookup."""
        if self.ringing:
            return
        await self._op("POST", f"/channels/{self.id}/ring")
        self.ringing = True

    async def answer(self) -> None:
        await self._op("POST", f"/channels/{self.id}/answer")

    async def set_vars(self, variables: dict[str, str]) -> None:
        await asyncio.gather(
            *(self._op("POST", f"/channels/{self.id}/variable", variable=k, value=v) for k, v in variables.items())
        )

    async def get_var(self, name: str) -> str | None:
        try:
            result = await self.ari.get(f"/channels/{self.id}/variable", variable=name)
        except AriError as exc:
            if exc.status == 404:
                return None
            raise
        return (result or {}).get("value")

    async def continue_to(self, context: str, extension: str, priority: int = 1) -> None:
        self.dial = DialWatch()
        await self._op("POST", f"/channels/{self.id}/continue", context=context, extension=extension, priority=priority)

    async def play(self, media: str) -> bool:
        """Plays ``media`` and waits for it to end; True when it played to its end. On an
        unanswered channel Asterisk sends it as early media (183), so nobody is billed."""
        playback_id = f"{self.id}-play-{next(_playback_ids)}"
        await self._op("POST", f"/channels/{self.id}/play/{playback_id}", media=media)
        while True:
            event = await self.next_event()
            playback = event.get("playback") or {}
            if playback.get("id") != playback_id:
                continue
            if event.get("type") == "PlaybackFinished":
                return playback.get("state") == "done"
            if event.get("type") == "PlaybackFailed":
                log.error("call %s: could not play %s", self.id, media)
                return False

    async def hangup(self, reason: str = "normal") -> None:
        try:
            await self.ari.delete(f"/channels/{self.id}", reason=reason)
        except AriError as exc:
            if exc.status != 404:  # already gone is fine
                raise

    async def _op(self, method: str, path: str, **params: Any) -> None:
        try:
            await self.ari.request(method, path, **params)
        except AriError as exc:
            if exc.status == 404:  # the channel is gone: the caller hung up under us
                self.gone = True
                raise CallerGone() from None
            raise
