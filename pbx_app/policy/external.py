"""Whether a forward outside the PBX (an employee's mobile, an outside number) can be dialled by
the policy alone: the number written in a usual form, a trunk to dial it through, the owner not
barred from it by an administrator, and the number within site.outbound's allowed patterns. The
checker (`check`, the page) refuses a policy that says otherwise; the decision skips such a leg
with the reason. The hourly limits are counted at call time (outbound/forwards.py). Pure."""

from __future__ import annotations

from dataclasses import dataclass

from .patterns import first_match
from .model import MOBILE, Employee, OutboundSettings, Policy
from .numbers import canonical_number

# Why a number fails the patterns (the guard's reason codes, outbound/guard.py).
PATTERN_REFUSALS = {
    "no_patterns": "site.outbound.allow lists no number patterns, so nothing is dialled outside",
    "not_allowed": "matches none of site.outbound.allow",
    "denied": "matches site.outbound.deny",
}


def pattern_refusal(settings: OutboundSettings, digits: str) -> str | None:
    """The guard's pattern checks on a number's digits: None (allowed) or the reason code."""
    if not settings.allow:
        return "no_patterns"
    if first_match(settings.deny, digits) is not None:
        return "denied"
    if first_match(settings.allow, digits) is None:
        return "not_allowed"
    return None


@dataclass(frozen=True)
class OutsideNumber:
    written: str  # as the policy (or the employee's profile) writes it
    digits: str  # international digits ("" when there is no number)
    refusal: str | None = None  # why it cannot be dialled, in words; None: it can
    # What is wrong: "forbidden" (the administrator's switch), "no_mobile", "no_trunk" or
    # "pattern" (the number itself).
    problem: str | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None


def outside_number(policy: Policy, owner: Employee | None, target: str) -> OutsideNumber:
    """``target`` (MOBILE or a number) for ``owner``'s calls: its digits and whether the policy
    lets them be dialled."""
    who = owner.extension if owner is not None else "the employee"
    written = (owner.mobile or "") if target == MOBILE and owner is not None else ("" if target == MOBILE else target)
    digits = canonical_number(written)
    if owner is not None and not owner.external_forwarding:
        return OutsideNumber(written, digits, f"an administrator has forbidden forwarding {who}'s calls outside "
                                              f"(employees.{who}.external_forwarding: false)", "forbidden")
    if target == MOBILE and not written:
        return OutsideNumber(written, digits, f"{who} has no mobile number (employees.{who}.mobile)", "no_mobile")
    settings = policy.site.outbound
    if settings.trunk is None:
        return OutsideNumber(written, digits, "site.outbound.trunk is not set: there is no carrier to dial outside "
                                              "numbers through", "no_trunk")
    reason = pattern_refusal(settings, digits)
    if reason is not None:
        shown = written if written == digits else f"{written} ({digits})"
        return OutsideNumber(written, digits, f"{shown} is not allowed: {PATTERN_REFUSALS[reason]}"
                             if reason != "no_patterns" else PATTERN_REFUSALS[reason], "pattern")
    return OutsideNumber(written, digits)
