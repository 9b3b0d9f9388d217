"""The CRM lookup a new call makes before it is decided: the policy's static mapping first,
then the webhook if the policy has one."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from ..policy.model import Policy
from .answer import CrmAnswer
from .static import static_answer
from .webhook import WebhookClient

log = logging.getLogger(__name__)

LOG_EVERY = 30.0  # s: a CRM that is down is logged once in a while, not once per call


class CrmProvider(Protocol):
    async def lookup(self, policy: Policy, caller: str) -> CrmAnswer: ...


class CrmDirectory:
    """The provider the app runs with: static mapping, then webhook (with deadline and cache)."""

    def __init__(self, webhook: WebhookClient | None = None):
        self.webhook = webhook or WebhookClient()
        self._last_log: tuple[str, float] | None = None
        self._quiet = 0

    async def lookup(self, policy: Policy, caller: str) -> CrmAnswer:
        answer = static_answer(policy, caller)
        if answer is not None:
            return answer
        if policy.crm.webhook is None:
            return CrmAnswer(None)
        answer = await self.webhook.answer(policy.crm.webhook, policy, caller)
        if answer.fallback:
            self._log_fallback(caller, answer.note or "")
        return answer

    def _log_fallback(self, caller: str, note: str) -> None:
        now = time.monotonic()
        kind = note.split("(")[0]
        if self._last_log and self._last_log[0] == kind and now - self._last_log[1] < LOG_EVERY:
            self._quiet += 1
            return
        more = f" ({self._quiet} more since the last report)" if self._quiet else ""
        log.warning("call from %s: %s%s", caller, note, more)
        self._last_log, self._quiet = (kind, now), 0

    async def close(self) -> None:
        await self.webhook.close()


async def lookup(provider: CrmProvider | None, policy: Policy, caller: str) -> CrmAnswer:
    """The CRM's answer for a new call; never raises. Without a provider: the static mapping only."""
    if provider is None:
        return static_answer(policy, caller) or CrmAnswer(None)
    deadline = (policy.crm.webhook.timeout_ms if policy.crm.webhook else 500) / 1000 + 0.05
    try:
        async with asyncio.timeout(deadline):  # a provider of our own keeps its deadline; any other must too
            return await provider.lookup(policy, caller)
    except TimeoutError:
        log.warning("call from %s: the CRM gave no answer within %d ms: the employee's profile decides", caller, deadline * 1000)
        return CrmAnswer(None, f"CRM gave no answer within {deadline * 1000:.0f} ms: the employee's profile decides", fallback=True)
    except Exception:
        log.exception("call from %s: the CRM lookup failed: the employee's profile decides", caller)
        return CrmAnswer(None, "CRM lookup failed: the employee's profile decides", fallback=True)
