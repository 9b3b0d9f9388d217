"""The static mapping in the policy (crm.clients): caller number → responsible manager."""

from __future__ import annotations

from ..policy.model import Policy, normalise_number
from .answer import CrmAnswer


def static_answer(policy: Policy, caller: str) -> CrmAnswer | None:
    """The mapping's rule for ``caller``; None when the mapping does not know them."""
    rule = policy.crm.clients.get(normalise_number(caller))
    return CrmAnswer(rule) if rule is not None else None
