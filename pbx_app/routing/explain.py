"""A plan in words, step by step, for a sysadmin (`pbx-app explain`)."""

from __future__ import annotations

from datetime import datetime

from ..policy.model import MOBILE, WEEKDAYS, Policy
from ..sounds import CALLBACK_OFFER, DROP_MESSAGE, FORWARD_NOTICE
from .plan import Announce, Drop, Offer, OutsideTarget, Plan, Ring, Step, Target, Voicemail

RULES = {
    "crm": "the CRM rule for this caller",
    "absence": "an absence: the employee is away",
    "schedule": "the schedule: out of working hours",
    "profile": "the employee's own setting",
    "default": "the site default",
}


def _who(policy: Policy, extension: str) -> str:
    emp = policy.employees.get(extension)
    return f"{extension} ({emp.name})" if emp is not None and emp.name != extension else extension


def _sound(uri: str) -> str:
    if uri == FORWARD_NOTICE:
        return "the standard announcement (\"your call is being forwarded\")"
    if uri == CALLBACK_OFFER:
        return "the standard offer (\"press 1 to be called back as soon as the manager is free, or stay on the line\")"
    if uri == DROP_MESSAGE:
        return "the message \"the manager can't take your call\""
    return f"the announcement {uri.removeprefix('sound:')}"


def _target_words(policy: Policy, target: Target) -> str:
    if not isinstance(target, OutsideTarget):
        return f"{_who(policy, target.extension)} on {target.endpoint}"
    trunk = policy.site.outbound.trunk
    where = f"{_who(policy, target.extension)}'s mobile {target.number}" if target.label == MOBILE else \
        f"the outside number {target.label} ({target.number})"
    how = [f"through the trunk {trunk.endpoint}" if trunk is not None else "through the trunk"]
    if trunk is not None and trunk.present == "company":
        how.append(f"showing the company's number {trunk.number}")
    if target.delay:
        how.append(f"joining after {target.delay} s")
    if target.confirm:
        how.append("the answerer presses 1 to take the call")
    return f"{where} ({', '.join(how)})"


def step_words(policy: Policy, step: Step) -> str:
    if isinstance(step, Ring):
        people = " and ".join(_target_words(policy, t) for t in step.targets)
        if step.department:
            together = " together" if len(step.targets) > 1 else ""
            return f"Ring department {step.department}: {people}{together}, for {step.timeout} s."
        who = f"{step.targets[0].extension} hears" if len(step.targets) == 1 else "they hear"
        owner = policy.employees.get(step.whisper)
        whose = f"{step.whisper} ({owner.name})" if owner and owner.name else step.whisper
        heard = f" ({who} \"forwarded call for {whose}\" first)" if step.whisper else ""
        return f"Ring {people} for {step.timeout} s{heard}."
    if isinstance(step, Announce):
        how = "the caller is answered first (answer_first)" if step.answer_first else "as early media: the caller is not answered for it"
        return f"Play {_sound(step.sound)}, {how}."
    if isinstance(step, Voicemail):
        return f"Voicemail: the caller can leave a message in box {step.mailbox}."
    if isinstance(step, Offer):
        return (f"Answer the caller and play {_sound(step.sound)}; they have {step.digit_timeout} s to press 1. "
                f"Pressed 1: \"we will call you back\", the call ends, and when {_who(policy, step.extension)} is free "
                f"they are rung first, then the client through {step.route} ({step.attempts} attempt(s) "
                f"{step.retry_after} s apart, expires after {step.expires_after} s). Otherwise:")
    if isinstance(step, Drop):
        if step.kind == "message" and step.sound:
            return f"Play {_sound(step.sound)}, then hang up."
        return "Busy tone: the call ends."
    return str(step)


def explain(policy: Policy, plan: Plan, caller: str, at: datetime) -> str:
    ext = plan.extension
    lines = [
        f"Call from {caller} to {_who(policy, ext)}, {WEEKDAYS[at.weekday()]} {at:%Y-%m-%d %H:%M} {at.tzname() or ''}".rstrip(),
        f"Policy: {policy.source}",
        "",
        f"Decided by: {plan.rule} — {RULES.get(plan.rule, plan.rule)}",
        "",
        "Why:",
        *(f"  - {r}" for r in plan.reasons),
        "",
        "What happens:",
    ]
    n = 1
    if plan.first is not None:
        lines.append(f"  {n}. The caller hears ringing. {step_words(policy, plan.first)}")
        lines.append("     If answered, they talk and the call ends there.")
        n += 1
    else:
        lines.append(f"  {n}. The caller hears ringing; {ext} is not rung (see why above).")
        n += 1
    branches = [("does not answer", plan.on_no_answer)]
    if plan.first is not None:
        branches += [("is busy", plan.on_busy), ("is unreachable", plan.on_unreachable)]
    shown: list[tuple] = []
    for what, steps in branches:
        same = next((w for w, s in shown if s == steps), None)
        if same is not None:
            lines.append(f"  If {ext} {what}: the same as when {ext} {same}.")
            continue
        lead = f"If {ext} {what}" if plan.first is not None else "Then"
        lines.append(f"  {lead}:")
        offered = False
        for step in steps:
            words = step_words(policy, step)
            if offered and isinstance(step, Announce):  # the offer answered the caller already
                words = f"Play {_sound(step.sound)} (the caller is already answered, for the offer)."
            offered = offered or isinstance(step, Offer)
            lines.append(f"    {n}. {words}")
            if isinstance(step, Ring):
                lines.append("       If answered, they talk and the call ends there.")
            n += 1
        shown.append((what, steps))
    return "\n".join(lines)
