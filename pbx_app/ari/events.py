"""The ARI events websocket, kept connected: reconnects with backoff and tells the app each
time it is (re)connected, so the app can pick up the calls it owned."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import AsyncIterator, Awaitable, Callable

import aiohttp

from ..backoff import Backoff
from .client import AriClient, AriError
from .ws_rest import RESPONSE

log = logging.getLogger(__name__)

Event = dict


class AriGaveUp(AriError):
    """Asterisk stayed out of reach for longer than we were told to keep trying."""


class EventStream:
    """``give_up_after``: seconds without a connection (from the start, or from losing it) after
    which iterating raises AriGaveUp; None keeps trying for ever."""

    def __init__(
        self,
        client: AriClient,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        min_backoff: float = 0.2,
        max_backoff: float = 5.0,
        heartbeat: float = 10.0,
        give_up_after: float | None = None,
    ):
        self.client = client
        self.on_connect = on_connect
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.heartbeat = heartbeat
        self.give_up_after = give_up_after
        self.connected = asyncio.Event()
        self.reconnects = 0
        # skip(raw text) → True: the event is dropped before it is even parsed (a flood we never read)
        self.skip: Callable[[str], bool] | None = None
        self.skipped = 0
        self.last_error: str | None = None

    def _ws_url(self) -> str:
        base = self.client.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        return f"{base}/ari/events?app={self.client.app}&subscribeAll=false"

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        try:
            return await self.client.session().ws_connect(
                self._ws_url(), heartbeat=self.heartbeat, headers=self.client.headers, max_msg_size=0
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                raise AriError(
                    401, f"{self.client.url} refused user {self.client.user!r}: wrong ARI user or password (401)",
                    "GET", "/events",
                ) from None
            raise AriError(exc.status, f"{self.client.url}: {exc.status} {exc.message}", "GET", "/events") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            cause = getattr(exc, "os_error", exc)
            reason = "connection refused" if isinstance(cause, ConnectionRefusedError) else str(exc) or type(exc).__name__
            raise AriError(0, f"cannot reach Asterisk's ARI at {self.client.url}: {reason}", "GET", "/events") from None

    async def __aiter__(self) -> AsyncIterator[Event]:
        """Yields events forever; on a lost connection waits with backoff and reconnects."""
        loop = asyncio.get_running_loop()
        backoff = Backoff(self.min_backoff, self.max_backoff, jitter=0.2)
        first = True
        down_since = loop.time()
        while True:
            try:
                ws = await self._connect()
            except AriError as exc:
                self.last_error = exc.message
                down_for = loop.time() - down_since
                if self.give_up_after is not None and down_for >= self.give_up_after:
                    raise AriGaveUp(exc.status, f"{exc.message}; gave up after {down_for:.0f} s", "GET", "/events") from None
                wait = backoff.next()
                log.error("ARI events: %s; retrying in %.1f s", exc.message, wait)
                await asyncio.sleep(wait)
                continue
            if not first:
                self.reconnects += 1
            log.info("ARI events connected (%s)", "first" if first else f"reconnect #{self.reconnects}")
            first = False
            backoff.reset()
            self.last_error = None
            self.connected.set()
            if self.on_connect is not None:
                try:
                    await self.on_connect()
                except Exception:
                    log.exception("ARI events: the on-connect hook failed")
            rest = self.client.ws_rest
            if rest is not None:  # only now: the hook's own requests wait for answers read below
                rest.attach(ws)
            try:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        if self.skip is not None and self.skip(msg.data):
                            self.skipped += 1
                            continue
                        try:
                            event = json.loads(msg.data)
                        except ValueError:
                            log.warning("ARI events: not JSON, ignored: %.200s", msg.data)
                            continue
                        if rest is not None and event.get("type") == RESPONSE:
                            rest.answer(event)
                            continue
                        yield event
                    elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                        break
            finally:
                if rest is not None:
                    rest.detach()
                self.connected.clear()
                down_since = loop.time()
                await ws.close()
            log.warning("ARI events connection lost; reconnecting")
