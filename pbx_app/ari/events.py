"""The ARI events websocket, kept connected: reconnects with backoff and tells the app each
time it is (re)connected, so the app can pick up the calls it owned."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import AsyncIterator, Awaitable, Callable

import aiohttp

from .client import AriClient, AriError

log = logging.getLogger(__name__)

Event = dict


class EventStream:
    def __init__(
        self,
        client: AriClient,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        min_backoff: float = 0.2,
        max_backoff: float = 10.0,
        heartbeat: float = 10.0,
    ):
        self.client = client
        self.on_connect = on_connect
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.heartbeat = heartbeat
        self.connected = asyncio.Event()
        self.reconnects = 0
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
                raise AriError(401, "wrong ARI user or password", "GET", "/events") from None
            raise AriError(exc.status, exc.message, "GET", "/events") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise AriError(0, f"Asterisk unreachable at {self.client.url}: {exc}", "GET", "/events") from None

    async def __aiter__(self) -> AsyncIterator[Event]:
        """Yields events forever; on a lost connection waits with backoff and reconnects."""
        backoff = self.min_backoff
        first = True
        while True:
            try:
                ws = await self._connect()
            except AriError as exc:
                self.last_error = exc.message
                log.error("ARI events: %s; retrying in %.1f s", exc.message, backoff)
                await asyncio.sleep(backoff * (0.8 + 0.4 * random.random()))
                backoff = min(backoff * 2, self.max_backoff)
                continue
            if not first:
                self.reconnects += 1
            log.info("ARI events connected (%s)", "first" if first else f"reconnect #{self.reconnects}")
            first = False
            backoff = self.min_backoff
            self.last_error = None
            self.connected.set()
            if self.on_connect is not None:
                await self.on_connect()
            try:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        try:
                            yield json.loads(msg.data)
                        except ValueError:
                            log.warning("ARI events: not JSON, ignored: %.200s", msg.data)
                    elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                        break
            finally:
                self.connected.clear()
                await ws.close()
            log.warning("ARI events connection lost; reconnecting")
