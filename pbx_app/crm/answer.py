"""What a CRM lookup came back with."""

from __future__ import annotations

from dataclasses import dataclass

from ..policy.model import CrmRule


@dataclass(frozen=True)
class CrmAnswer:
    rule: CrmRule | None  # None: no rule for this client (or the CRM could not say)
    note: str | None = None  # why there is no rule, for Plan.reasons and the log
    fallback: bool = False  # the CRM failed (slow, down, garbage): the profile decides
