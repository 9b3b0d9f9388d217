"""ARI REST calls. Every failure surfaces as one error type carrying Asterisk's own words."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from typing import Any

import aiohttp

from .ws_rest import NotSent, WsRest

log = logging.getLogger(__name__)


_IDS = re.compile(r"/(channels|playbacks|bridges)/[^/]+")


def route(method: str, path: str) -> str:
    """A request with its ids taken out, e.g. POST /channels/{id}/continue: what /metrics counts."""
    return f"{method} " + _IDS.sub(lambda m: f"/{m.group(1)}/{{id}}", path)


class AriError(Exception):
    """A REST call failed: HTTP status (0 when Asterisk could not be reached) and Asterisk's message."""

    def __init__(self, status: int, message: str, method: str = "", path: str = ""):
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        super().__init__(f"ARI {method} {path}: {status} {message}".strip())


def _encode(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


class AriVerbs:
    """get/post/delete in terms of ``request``: shared by the real client and testing.FakeAsterisk."""

    async def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        raise NotImplementedError

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, **params)

    async def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return await self.request("POST", path, body, **params)

    async def delete(self, path: str, **params: Any) -> Any:
        return await self.request("DELETE", path, **params)


class AriClient(AriVerbs):
    """REST side of ARI. ``url`` is Asterisk's HTTP root, e.g. http://127.0.0.1:8088."""

    def __init__(self, url: str, user: str, password: str, app: str, timeout: float = 5.0, rest_over_websocket: bool = False):
        self.url = url.rstrip("/")
        self.app = app
        self.user = user
        # The password stays inside the header; it is never logged or put in a repr.
        self._auth_header = aiohttp.encode_basic_auth(user, password) if hasattr(aiohttp, "encode_basic_auth") else aiohttp.BasicAuth(user, password).encode()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self.request_counts: Counter[str] = Counter()  # requests made, by route (the cost of a call)
        # Set: requests go over the events websocket while it is connected (ws_rest.py).
        self.ws_rest: WsRest | None = WsRest(timeout) if rest_over_websocket else None

    def __repr__(self) -> str:
        return f"AriClient({self.url!r}, user={self.user!r}, app={self.app!r})"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": self._auth_header}

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers=self.headers,
                connector=aiohttp.TCPConnector(limit=64),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """``path`` is relative to /ari, e.g. "/channels/ID/ring". None params are left out."""
        query = {k: _encode(v) for k, v in params.items() if v is not None}
        self.request_counts[route(method, path)] += 1
        if self.ws_rest is not None and self.ws_rest.ready:
            try:
                return await self._over_websocket(method, path, query, body)
            except NotSent:
                pass
        url = f"{self.url}/ari{path}"
        try:
            async with self.session().request(method, url, params=query, json=body) as resp:
                if resp.status >= 300:
                    raise AriError(resp.status, await _message(resp), method, path)
                if resp.status == 204 or resp.content_length == 0:
                    return None
                if resp.content_type == "application/json":
                    return await resp.json()
                return await resp.read()
        except aiohttp.ClientError as exc:
            raise AriError(0, f"Asterisk unreachable at {self.url}: {exc}", method, path) from None
        except TimeoutError:
            raise AriError(0, f"Asterisk did not answer within {self._timeout.total} s", method, path) from None


    async def _over_websocket(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        assert self.ws_rest is not None
        try:
            status, reason, answer = await self.ws_rest.request(method, path, query, body)
        except NotSent:
            raise
        except ConnectionError as exc:
            raise AriError(0, f"Asterisk unreachable at {self.url}: {exc}", method, path) from None
        except TimeoutError:
            raise AriError(0, f"Asterisk did not answer within {self._timeout.total} s", method, path) from None
        if status >= 300:
            message = answer.get("message") if isinstance(answer, dict) else answer
            raise AriError(status, str(message or reason), method, path)
        return None if status == 204 else answer

async def _message(resp: aiohttp.ClientResponse) -> str:
    text = await resp.text()
    try:
        data = json.loads(text)
        if isinstance(data, dict) and "message" in data:
            return str(data["message"])
    except ValueError:
        pass
    return text.strip() or resp.reason or ""
