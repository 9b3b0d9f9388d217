"""The CRM over HTTP: GET <url>?caller=<digits> → {"manager": "103", "on_no_answer": {...}}.
404, ``{}`` or ``{"manager": null}`` mean no rule for this client. Answers are cached for
``cache_seconds``; anything slower than ``timeout_ms`` is abandoned and the profile decides."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import aiohttp

from ..policy.model import Policy, WebhookSettings, normalise_number
from .answer import CrmAnswer
from .rules import rule_from_json

log = logging.getLogger(__name__)

CACHE_LIMIT = 10_000
NO_RULE = object()  # cached: the CRM said it has no rule for this client


class WebhookError(Exception):
    """The CRM did not give a usable answer; the message says how, for a sysadmin."""


class WebhookClient:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def answer(self, settings: WebhookSettings, policy: Policy, caller: str) -> CrmAnswer:
        """Never raises, never takes longer than ``settings.timeout_ms``."""
        number = normalise_number(caller)
        cached = self._cached(settings, number)
        try:
            if cached is not None:
                raw = cached
            else:
                async with asyncio.timeout(settings.timeout_ms / 1000):
                    raw = await self._fetch(settings, number)
        except TimeoutError:
            return _fallback(f"CRM webhook did not answer within {settings.timeout_ms} ms")
        except WebhookError as exc:
            return _fallback(f"CRM webhook {exc}")
        if raw is NO_RULE:
            rule, problem = None, None
        else:
            rule, problem = rule_from_json(raw, policy)
        if problem is not None:
            return _fallback(f"CRM webhook answered an unusable rule ({problem})")
        if cached is None:
            self._store(settings, number, raw)  # only answers we could use
        if rule is None:
            return CrmAnswer(None, f"CRM webhook: no rule for {caller}")
        return CrmAnswer(rule)

    async def _fetch(self, settings: WebhookSettings, number: str) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {"Accept": "application/json"}
        if settings.token_file:
            try:
                headers["Authorization"] = "Bearer " + Path(settings.token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise WebhookError(f"token file {settings.token_file}: {exc.strerror}") from None
        try:
            async with self._session.get(settings.url, params={"caller": number}, headers=headers) as resp:
                if resp.status == 404:
                    return NO_RULE
                if resp.status != 200:
                    raise WebhookError(f"answered HTTP {resp.status}")
                body = await resp.read()
        except aiohttp.ClientConnectorError as exc:
            raise WebhookError(f"is unreachable (cannot connect to {exc.host}:{exc.port})") from None
        except aiohttp.ClientError as exc:
            raise WebhookError(f"failed ({exc.__class__.__name__}: {str(exc)[:100]})") from None
        try:
            raw = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookError(f"answered something that is not JSON ({body[:60]!r})") from None
        if isinstance(raw, dict) and raw.get("manager") in (None, ""):
            return NO_RULE
        return raw

    def _cached(self, settings: WebhookSettings, number: str) -> Any:
        hit = self._cache.get((settings.url, number))
        if hit is None:
            return None
        expires, raw = hit
        if self.clock() >= expires:
            del self._cache[(settings.url, number)]
            return None
        return raw

    def _store(self, settings: WebhookSettings, number: str, raw: Any) -> None:
        if settings.cache_seconds <= 0:
            return
        if len(self._cache) >= CACHE_LIMIT:
            now = self.clock()
            for key in [k for k, (exp, _) in self._cache.items() if exp <= now] or list(self._cache)[: CACHE_LIMIT // 10]:
                del self._cache[key]
        self._cache[(settings.url, number)] = (self.clock() + settings.cache_seconds, raw)


def _fallback(why: str) -> CrmAnswer:
    return CrmAnswer(None, f"{why}: the employee's profile decides", fallback=True)
