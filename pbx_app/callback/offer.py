"""What a client's key at a callback offer comes to, the same in both modes (ARI engines and
FastAGI): the offer leg's outcome and cause, and the request stored when they pressed 1. The
outbound guard has the last word, counted at the press: a limit reached since the offer refuses."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..db.errors import StoreError
from ..outbound.guard import Verdict
from ..routing.plan import Offer
from .requests import CallbackRequest, offered

log = logging.getLogger(__name__)


class Requests(Protocol):
    """Where a callback request goes (a CallbackService): the outbound guard's word on the number
    first, then the request (False: one for the number was waiting already)."""

    async def vet(self, number: str, employee: str, call_id: str, reserve: bool = False) -> Verdict: ...

    async def add(self, request: CallbackRequest) -> bool: ...


@dataclass(frozen=True)
class OfferAnswer:
    outcome: str  # the offer leg's LegOutcome
    cause: str
    request: CallbackRequest | None = None  # stored: the call ends; None: the offer's fallback runs


async def answer_offer(callbacks: Requests, step: Offer, digit: str, caller: str, call_id: str, leg: int,
                       now: datetime, busy: bool) -> OfferAnswer:
    if digit != "1":
        return OfferAnswer("declined" if digit else "no_digit", f"answered for the offer; pressed {digit or 'nothing'}")
    verdict = await callbacks.vet(caller, step.extension, call_id, reserve=True)
    if not verdict.allowed:
        return OfferAnswer(verdict.leg_outcome, f"pressed 1; {verdict.why}")
    request = offered(step, call_id, verdict.number, leg, now, busy=busy)
    try:
        added = await callbacks.add(request)
    except StoreError as exc:
        log.error("call %s: the callback request could not be stored (%s); the offer's fallback runs", call_id, exc)
        return OfferAnswer("failed", f"answered for the offer; pressed 1; not stored: {exc}"[:200])
    if added:
        return OfferAnswer("callback_requested", "answered for the offer; pressed 1", request)
    return OfferAnswer("already_requested", "answered for the offer; pressed 1; one was waiting", request)
