"""The site's webhook (PBX_NOTICE_WEBHOOK_URL): one JSON POST per missed call or voicemail
message, for a chat or a CRM. A 2xx is delivered; a 5xx, 408, 429 or no answer within the
timeout is retried; any other answer is final. Each POST carries an Idempotency-Key (the
notice's key), so a receiver can drop a repeat."""

from __future__ import annotations

import asyncio

import aiohttp

from ..i18n import translator
from .happened import what_happened
from .message import local_time
from .smtp import SendError

RETRYABLE = {408, 425, 429}


def payload(kind: str, facts: dict, language: str) -> dict:
    return {
        "kind": kind,  # missed, voicemail, or outbound_limit (to administrators: no call, see detail)
        "call_id": facts.get("call_id"),
        "caller": facts.get("caller"),
        "started_at": facts.get("started_at"),  # ISO 8601, UTC
        "local_time": local_time(facts),
        "employee": facts.get("employee"),
        "employee_name": facts.get("employee_name"),
        "mailbox": facts.get("mailbox"),
        "what_happened": what_happened(facts, translator(language)),
        **({"detail": facts.get("detail")} if kind == "outbound_limit" else {}),
    }


async def post(session: aiohttp.ClientSession, url: str, key: str, body: dict, timeout: float) -> None:
    try:
        async with session.post(url, json=body, headers={"Idempotency-Key": key},
                                timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False) as answer:
            if 200 <= answer.status < 300:
                return
            permanent = answer.status < 500 and answer.status not in RETRYABLE
            raise SendError(f"webhook answered {answer.status} {answer.reason or ''}".strip(), permanent=permanent)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise SendError(f"webhook: {type(exc).__name__}: {exc}"[:300]) from None
