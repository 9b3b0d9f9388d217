"""A rule the CRM webhook sent, checked like the same rule written in the policy."""

from __future__ import annotations

from typing import Any

from ruamel.yaml.comments import CommentedMap

from ..policy.loader import crm_rule
from ..policy.model import CrmRule, Policy
from ..policy.reader import Reader


def _as_tree(value: Any) -> Any:
    if isinstance(value, dict):
        node = CommentedMap()
        for k, v in value.items():
            node[k] = _as_tree(v)
        return node
    if isinstance(value, list):
        return [_as_tree(v) for v in value]
    return value


def rule_from_json(raw: Any, policy: Policy) -> tuple[CrmRule | None, str | None]:
    """(rule, None), (None, None) for "no rule for this client", or (None, what is wrong)."""
    if not isinstance(raw, dict):
        return None, f"expected a JSON object, got {type(raw).__name__}"
    if raw.get("manager") in (None, ""):
        return None, None
    r = Reader("CRM webhook")
    rule = crm_rule(r, _as_tree(raw), "answer", "webhook")
    if rule is None or r.errors:
        return None, "; ".join(p.message for p in r.errors) or "no usable rule"
    if rule.manager not in policy.employees:
        return None, f"answer.manager: unknown extension '{rule.manager}'"
    action = rule.on_no_answer
    if action is not None and action.kind == "forward":
        if action.target not in policy.employees and action.target not in policy.departments:
            return None, f"answer.on_no_answer.to: unknown extension or department '{action.target}'"
        if action.target == rule.manager:
            return None, "answer.on_no_answer.to: forwards to the manager who was just rung"
    return rule, None
