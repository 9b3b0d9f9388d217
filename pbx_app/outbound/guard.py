"""The one yes-or-no for a number the PBX is about to dial out (or to offer to call back):

    verdict = await guard.check(policy, number, employee, purpose, ref, reserve=False)

Pure checks first (the number is there, allowed, not denied: ``screen``), then the hourly
limits in the shared database. ``reserve`` counts the call when it is let through. A refusal is
counted for /metrics by reason; the site's limit reached is told once an hour across all
engines (one log line, one notice to administrators), not once per call. The database out of
reach refuses: a guard that waves calls through when it cannot count is no guard."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Awaitable, Callable, Literal

from ..db.errors import StoreError
from ..policy.external import pattern_refusal
from ..policy.model import OutboundSettings, Policy, normalise_number
from .limits import SITE_LIMIT_TOLD, WINDOW, OutboundCall, OutboundLimits, Quota

log = logging.getLogger(__name__)

Reason = Literal["hidden", "no_patterns", "not_allowed", "denied", "number_limit", "employee_limit", "site_limit",
                 "store_down"]
REASONS: dict[str, str] = {
    "hidden": "the number is hidden",
    "no_patterns": "no outside number is allowed (site.outbound.allow is empty)",
    "not_allowed": "the number matches none of site.outbound.allow",
    "denied": "the number matches site.outbound.deny",
    "number_limit": "the hour's limit of calls to this number is reached",
    "employee_limit": "the hour's limit of calls out for this employee is reached",
    "site_limit": "the site's hourly limit of calls out is reached",
    "store_down": "the calls out cannot be counted (the database is out of reach)",
}
LIMITS = ("number_limit", "employee_limit", "site_limit", "store_down")  # may pass later; the others will not
# How a refused offer's leg ends in history (both transports); a limit reads "over_limit".
REFUSED_LEG = {"hidden": "hidden_number", "no_patterns": "number_not_allowed", "not_allowed": "number_not_allowed",
               "denied": "number_not_allowed", "store_down": "not_checked"}
HIDDEN = ("anonymous", "restricted", "unavailable", "unknown", "private", "withheld")


@dataclass(frozen=True)
class Verdict:
    number: str  # the digits that would be dialled
    reason: Reason | None = None  # None: go ahead

    @property
    def allowed(self) -> bool:
        return self.reason is None

    @property
    def leg_outcome(self) -> str:
        """The offer's leg outcome when refused."""
        return REFUSED_LEG.get(self.reason or "", "over_limit")

    @property
    def why(self) -> str:
        return REASONS.get(self.reason or "", "allowed")


def screen(settings: OutboundSettings, number: str) -> Verdict:
    """The checks that need nothing but the policy."""
    digits = normalise_number(number)
    if not digits or number.strip().lower() in HIDDEN:
        return Verdict("", "hidden")
    return Verdict(digits, pattern_refusal(settings, digits))  # type: ignore[arg-type]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class OutboundGuard:
    """``limits`` None: patterns only (a test, or a process without the journal's database).
    ``refused(reason)``: a refusal, for /metrics. ``tell(text)``: administrators hear of the
    site limit (a notice); called once an hour at most."""

    def __init__(self, limits: OutboundLimits | None, clock: Callable[[], datetime] = _utcnow,
                 refused: Callable[[str], None] | None = None,
                 tell: Callable[[str], Awaitable[None]] | None = None):
        self.limits = limits
        self.clock = clock
        self.refused = refused or (lambda reason: None)
        self.tell = tell
        self.counts: dict[str, int] = {}  # refusals by reason, since start
        self.closing: list[Callable[[], Awaitable[None]]] = [] if limits is None else [limits.close]

    async def check(self, policy: Policy, number: str, employee: str, purpose: str, ref: str,
                    reserve: bool = False, spare: int = 0) -> Verdict:
        """May ``number`` be dialled for ``employee`` now? ``reserve``: count it if so. ``spare``:
        calls already counted for this one (a callback's reservation, at its first dial)."""
        settings = policy.site.outbound
        verdict = screen(settings, number)
        if verdict.allowed and self.limits is not None:
            quota = Quota(settings.per_number, settings.per_employee, settings.per_site)
            now = self.clock()
            try:
                limit = await self.limits.take(OutboundCall(verdict.number, employee, purpose, ref), quota, now,
                                               record=reserve, spare=spare)
            except StoreError as exc:
                log.error("outbound %s to %s for %s refused: the calls out cannot be counted (%s)", purpose,
                          verdict.number, employee, exc)
                limit = "store_down"  # type: ignore[assignment]
            if limit is not None:
                verdict = Verdict(verdict.number, limit)  # type: ignore[arg-type]
                if limit == "site_limit":
                    await self._site_limit(settings, now)
        if not verdict.allowed:
            self.counts[verdict.reason] = self.counts.get(verdict.reason, 0) + 1  # type: ignore[index]
            self.refused(verdict.reason)  # type: ignore[arg-type]
            log.info("outbound %s to %s for %s (%s) refused: %s", purpose, verdict.number or "(hidden)", employee, ref,
                     verdict.why)
        return verdict

    async def close(self) -> None:
        for close in self.closing:
            await close()

    async def _site_limit(self, settings: OutboundSettings, now: datetime) -> None:
        try:
            first = await self.limits.first_to_tell(SITE_LIMIT_TOLD, now, WINDOW)  # type: ignore[union-attr]
        except StoreError as exc:
            log.warning("outbound: cannot tell whether the site limit was reported already (%s)", exc)
            return
        if not first:
            return
        text = (f"the site's limit of {settings.per_site} calls out an hour (site.outbound.per_hour.site) is reached: "
                f"callbacks and outside forwards are refused until the count of the last hour drops; "
                f"many requests at once may be toll fraud")
        log.error("outbound: %s", text)
        if self.tell is not None:
            try:
                await self.tell(text)
            except Exception:  # a notice that cannot be queued must not break a call
                log.exception("outbound: could not queue the notice to administrators")
