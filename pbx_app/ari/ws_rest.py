"""ARI requests over the events websocket (Asterisk 22.4+, "REST over WebSocket"): a request is one
JSON text frame, its answer a RESTResponse frame among the events. Each HTTP request through
aiohttp's client costs the app far more CPU than a frame does (bench/README.md).

Not the default, and not for production on Asterisk 22.10.1: under 100 calls/s Asterisk
segfaulted in res_http_websocket.so, and at 50 calls/s beside the web load its answers came late
enough for claims to miss their 500 ms (bench/README.md). Asterisk reads one socket's requests one
at a time, so a slow request holds the next ones. The engines use it only when
PBX_ARI_REST=websocket, and fall back to HTTP whenever the socket is not connected."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any
from urllib.parse import quote

import aiohttp

RESPONSE = "RESTResponse"


class NotSent(ConnectionError):
    """The socket was not there: the request never left, so HTTP may carry it instead."""


class WsRest:
    def __init__(self, timeout: float):
        self.timeout = timeout
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._waiting: dict[str, asyncio.Future] = {}
        self._ids = itertools.count(1)

    @property
    def ready(self) -> bool:
        return self._ws is not None and not self._ws.closed

    def attach(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws

    def detach(self) -> None:
        """The socket is gone: whoever waits for an answer gets an error now, not at its timeout."""
        self._ws = None
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the ARI websocket closed"))

    def answer(self, message: dict) -> None:
        future = self._waiting.pop(str(message.get("request_id", "")), None)
        if future is not None and not future.done():
            future.set_result(message)

    async def request(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, str, Any]:
        """(status, reason, decoded body or None). Raises ConnectionError or TimeoutError."""
        ws = self._ws
        if ws is None or ws.closed:
            raise NotSent("the ARI websocket is not connected")
        request_id = str(next(self._ids))
        frame: dict[str, Any] = {"type": "RESTRequest", "request_id": request_id, "method": method,
                                 "uri": quote(path.lstrip("/"), safe="/:@-._~")}
        if query:
            frame["query_strings"] = [{"name": k, "value": v} for k, v in query.items()]
        if body is not None:
            frame["content_type"] = "application/json"
            frame["message_body"] = json.dumps(body)
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            await ws.send_str(json.dumps(frame))
            message = await asyncio.wait_for(future, self.timeout)
        finally:
            self._waiting.pop(request_id, None)
        status = int(message.get("status_code") or 0)
        text = message.get("message_body") or ""
        decoded: Any = None
        if text and "json" in (message.get("content_type") or ""):
            try:
                decoded = json.loads(text)
            except ValueError:
                decoded = text
        elif text:
            decoded = text
        return status, str(message.get("reason_phrase") or ""), decoded
