"""The no-answer decision: what happens to a direct call, decided in one pure function.

Everything the decision depends on comes in as arguments (the policy the call started with,
who calls, the time, the CRM's rule for the caller, a seeded random source), so a test can
replay any call exactly.

Precedence, highest first — Plan.rule names the one that won, Plan.reasons says why:

- crm: the caller's CRM rule. If the client dialled their responsible manager, the rule's
  ``on_no_answer`` replaces the manager's own no-answer/busy/unreachable settings. If they
  dialled someone else, that person is still rung first (the client chose them), and when they
  do not answer the call goes to the responsible manager, then to the rule's ``on_no_answer``
  (or the manager's own setting).
- absence / schedule: the employee is off; they are not rung at all, and their ``on_absent``
  action (or else their no-answer action) runs at once.
- profile: the employee's own on_no_answer / on_busy / on_unreachable.
- default: the site's on_no_answer.

Colleagues and department members who are off are skipped too: ringing them is useless."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime

from .external_leg import ExternalLeg, dial_string
from ..policy.external import outside_number
from ..policy.model import MOBILE, Action, Announcement, CrmRule, Department, Employee, Policy, is_outside
from ..policy.numbers import canonical_number
from ..sounds import CALLBACK_OFFER, DROP_MESSAGE, announcement_sound
from .availability import at_work, availability
from .describe import action_words
from .plan import Announce, Drop, Offer, OutsideTarget, Plan, Ring, Step, Target, Voicemail


@dataclass(frozen=True)
class CallContext:
    extension: str  # the number the client dialled
    caller: str  # the client's number
    at: datetime  # when the call came in (aware; naive means UTC)
    crm: CrmRule | None = None  # the CRM's rule for this caller, looked up before deciding
    crm_note: str | None = None  # what the CRM lookup said when it gave no rule (slow, down…)


@dataclass
class _Decision:
    """What one decision needs on the way down: the inputs and the reasons gathered so far."""

    policy: Policy
    at: datetime
    rng: random.Random
    reasons: list[str] = field(default_factory=list)
    away: frozenset[str] | None = None  # who is away at ``at``, where the caller knows already

    def working(self, employee: Employee) -> bool:
        if self.away is not None:
            return employee.extension not in self.away
        return at_work(employee, self.at, self.policy.site.timezone)

    def why_off(self, employee: Employee) -> str:
        return availability(employee, self.at, self.policy.site.timezone).detail


def decide(policy: Policy, call: CallContext, rng: random.Random | None = None,
           away: frozenset[str] | None = None) -> Plan:
    """Returns the plan for a direct call to ``call.extension``. ``away``: who is away at
    ``call.at``, given by a caller that works out thousands of plans for one moment (the
    no-engine files: a department's members are asked about once, not once per colleague)."""
    d = _Decision(policy, call.at, rng or random.Random(0), away=away)
    site = policy.site
    employee = policy.employee(call.extension)
    owner = policy.number_owner(call.extension) if employee is None else None
    if owner is not None:
        # A company number (DID) the carrier delivered: history keeps which one was dialled.
        d.reasons.append(f"dialled {call.extension}: the number {owner.written} of {owner.kind} {owner.id}")
        if owner.kind == "department":
            return _department_call(d, policy.departments[owner.id])
        employee = policy.employees[owner.id]
    if employee is None:
        # Not in the policy: ring the endpoint of the same name with the site defaults, so an
        # employee nobody has configured yet still gets their calls.
        employee = Employee(extension=call.extension, name=call.extension, endpoint=f"PJSIP/{call.extension}")
        d.reasons.append(f"{call.extension} is not in the policy: site defaults")
    ext = employee.extension

    rule = _usable_crm_rule(policy, call, d)
    here = availability(employee, call.at, site.timezone)
    d.reasons.append(here.detail)
    first = None
    if here.working:
        first = Ring(targets=_phones(d, employee), timeout=_ring_time(policy, employee), role="employee")

    own = employee.on_no_answer
    own_words = f"{ext}'s own setting ({action_words(policy, own)})" if own else f"the site default ({action_words(policy, site.on_no_answer)})"
    if rule is not None and rule.manager != ext:
        manager = policy.employees[rule.manager]
        d.reasons.append(
            f"not reached: CRM rule wins over {own_words}: the call goes to {manager.extension} ({manager.name}), "
            f"the responsible manager of {call.caller}"
        )
        steps = _to_responsible_manager(d, employee, manager, rule)
        return _plan(ext, first, steps, steps, steps, d, "crm")
    if rule is not None and rule.on_no_answer is not None:
        d.reasons.append(f"not reached: CRM rule wins over {own_words}: {action_words(policy, rule.on_no_answer)}")
        steps = _action_steps(d, employee, rule.on_no_answer, (ext,), max(site.max_forwards, 1))
        return _plan(ext, first, steps, steps, steps, d, "crm")

    won = here.rule or ("profile" if own else "default")
    if not here.working and employee.on_absent is not None:
        d.reasons.append(f"off: {ext}'s on_absent setting ({action_words(policy, employee.on_absent)})")
        steps = _action_steps(d, employee, employee.on_absent, (ext,), site.max_forwards)
        return _plan(ext, first, steps, steps, steps, d, won)

    on_no_answer = own or site.on_no_answer
    on_busy = employee.on_busy or on_no_answer
    on_unreachable = employee.on_unreachable or on_no_answer
    if not here.working:
        d.reasons.append(f"off: {own_words} runs at once")
    else:
        d.reasons.append(f"no answer: {own_words}")
        if employee.on_busy:
            d.reasons.append(f"busy: {ext}'s own setting ({action_words(policy, employee.on_busy)})")
        if employee.on_unreachable:
            d.reasons.append(f"unreachable: {ext}'s own setting ({action_words(policy, employee.on_unreachable)})")

    def branch(action: Action) -> tuple[Step, ...]:
        return _action_steps(d, employee, action, (ext,), site.max_forwards)

    return _plan(ext, first, branch(on_no_answer), branch(on_busy), branch(on_unreachable), d, won)


def _department_call(d: _Decision, department: Department) -> Plan:
    """A department's own number: its group rings as its strategy says; nobody answering, the
    site's no-answer action (a department has no settings of its own for that)."""
    policy = d.policy
    rings = _department_rings(d, department, ())
    first = replace(rings[0], role="employee") if rings else None
    if first is None:
        d.reasons.append(f"nobody in department {department.id} is at work")
    site_action = policy.site.on_no_answer
    d.reasons.append(f"not reached: the site default ({action_words(policy, site_action)})")
    group = Employee(extension=department.id, name=department.name, endpoint="")
    onward = _action_steps(d, group, site_action, tuple(department.members), policy.site.max_forwards)
    steps = tuple(rings[1:]) + onward
    return _plan(department.id, first, steps, steps, steps, d, "default")


def _plan(ext, first, no_answer, busy, unreachable, d: _Decision, rule: str) -> Plan:
    return Plan(
        extension=ext,
        first=first,
        on_no_answer=no_answer,
        on_busy=busy,
        on_unreachable=unreachable,
        reasons=tuple(d.reasons),
        rule=rule,
    )


def _usable_crm_rule(policy: Policy, call: CallContext, d: _Decision) -> CrmRule | None:
    rule = call.crm
    if rule is None:
        if call.crm_note:
            d.reasons.append(call.crm_note)
        return None
    if rule.manager not in policy.employees:
        # Webhook rules are checked when they arrive; this guards a rule from an older policy.
        d.reasons.append(f"CRM rule ({rule.source}) names {rule.manager}, who is not in the policy: ignored")
        return None
    d.reasons.append(f"CRM rule ({rule.source}): {rule.manager} is the responsible manager of {call.caller}")
    return rule


def _to_responsible_manager(d: _Decision, dialled: Employee, manager: Employee, rule: CrmRule) -> tuple[Step, ...]:
    policy = d.policy
    visited = (dialled.extension, manager.extension)
    steps: list[Step] = []
    if d.working(manager):
        # The caller hears what the dialled employee's own forward would have announced.
        own = dialled.on_no_answer if dialled.on_no_answer and dialled.on_no_answer.kind == "forward" else None
        announcement = dialled.announcement or (own.announcement if own else Announcement())
        sound = announcement_sound(announcement)
        answer_first = own.answer_first if own else False
        if sound is not None:
            steps.append(Announce(sound=sound, answer_first=answer_first))
        steps.append(_ring_one(d, manager))
    else:
        d.reasons.append(d.why_off(manager))
    onward = rule.on_no_answer or manager.on_no_answer or policy.site.on_no_answer
    who = "the CRM rule" if rule.on_no_answer else f"{manager.extension}'s own setting" if manager.on_no_answer else "the site default"
    d.reasons.append(f"{manager.extension} not reached: {who} ({action_words(policy, onward)})")
    forwards_left = max(policy.site.max_forwards, 1) if rule.on_no_answer else policy.site.max_forwards - 1
    steps.extend(_action_steps(d, manager, onward, visited, forwards_left))
    return tuple(steps)


def _ring_time(policy: Policy, employee: Employee) -> int:
    return employee.ring_time or policy.site.ring_time


def _ring_one(d: _Decision, employee: Employee) -> Ring:
    return Ring(targets=_phones(d, employee), timeout=_ring_time(d.policy, employee), role="forward")


def _phones(d: _Decision, employee: Employee) -> tuple[Target, ...]:
    """The desk phone, and the mobile too when the employee asks for it (ring_mobile)."""
    desk = Target(employee.extension, employee.endpoint)
    together = employee.ring_mobile
    if together is None:
        return (desk,)
    ring = _ring_time(d.policy, employee)
    if together.after >= ring:
        d.reasons.append(f"{employee.extension}'s mobile is not rung: it would join after {together.after} s, "
                         f"past the ring time of {ring} s")
        return (desk,)
    mobile = _outside(d, employee, MOBILE, together.after, together.confirm)
    if mobile is None:
        return (desk,)
    when = "at once" if not together.after else f"joining after {together.after} s"
    d.reasons.append(f"{employee.extension}'s mobile rings with the desk phone, {when}")
    return (desk, mobile)


def _outside(d: _Decision, owner: Employee, target: str, delay: int, confirm: bool) -> Target | None:
    """A leg through the site's trunk to ``owner``'s mobile or an outside number; None (and the
    reason) when the policy does not let it be dialled."""
    number = outside_number(d.policy, owner, target)
    what = f"{owner.extension}'s mobile" if target == MOBILE else f"the outside number {target}"
    trunk = d.policy.site.outbound.trunk
    if number.refusal is not None or trunk is None:
        d.reasons.append(f"{what} is not rung: {number.refusal}")
        return None
    present = canonical_number(trunk.number) if trunk.present == "company" and trunk.number else ""
    leg = ExternalLeg(employee=owner.extension, digits=trunk.dialled(number.digits), trunk=trunk.endpoint,
                      delay=delay, confirm=confirm, present=present)
    try:
        endpoint = dial_string(leg)
    except ValueError as exc:  # an extension with characters that cannot travel in a Local channel
        d.reasons.append(f"{what} is not rung: {exc}")
        return None
    return OutsideTarget(owner.extension, endpoint, label=MOBILE if target == MOBILE else number.written,
                  number=number.digits, delay=delay, confirm=confirm)


def _drop(action: Action) -> Drop:
    return Drop(kind=action.drop, sound=DROP_MESSAGE if action.drop == "message" else None)


def _action_steps(
    d: _Decision,
    owner: Employee,
    action: Action,
    visited: tuple[str, ...],
    forwards_left: int,
) -> tuple[Step, ...]:
    policy = d.policy
    if action.kind == "callback":
        then = action.then or Action()
        return _offer(d, owner, action) + _action_steps(d, owner, then, visited, forwards_left)
    if action.kind == "drop":
        return (_drop(action),)
    if action.kind == "voicemail":
        mailbox = owner.mailbox or f"{owner.extension}@default"
        return (Voicemail(mailbox=mailbox, extension=owner.extension),)

    # forward
    if forwards_left <= 0 or action.target is None or action.target in visited:
        # The chain is over its bound or would come back to someone already rung: end cleanly.
        return (_drop(action),)
    rings: list[Step] = []
    department = policy.departments.get(action.target)
    colleague = policy.employee(action.target)
    if department is None and colleague is None and is_outside(action.target):
        leg = _outside(d, owner, action.target, 0, action.confirm)
        if leg is not None:
            rings.append(Ring(targets=(leg,), timeout=_ring_time(policy, owner), role="forward"))
        return _announced(action, rings, _drop(action))
    if department is not None:
        rings.extend(_whispered(action, owner, r) for r in _department_rings(d, department, visited))
    elif colleague is not None:
        if d.working(colleague):
            rings.append(_whispered(action, owner, _ring_one(d, colleague)))
        else:
            d.reasons.append(d.why_off(colleague))
        onward = colleague.on_no_answer if d.working(colleague) else (colleague.on_absent or colleague.on_no_answer)
        if forwards_left > 1 and onward is not None and onward.kind == "forward":
            # The colleague's own forward continues the chain; its announcement is not repeated.
            chained = _action_steps(d, colleague, onward, visited + (colleague.extension,), forwards_left - 1)
            rings.extend(s for s in chained if not isinstance(s, (Announce, Drop)))
            tail = [s for s in chained if isinstance(s, Drop)]
            return _announced(action, rings, tail[-1] if tail else _drop(action))
    return _announced(action, rings, _drop(action))


def _whispered(action: Action, owner: Employee, ring: Ring) -> Ring:
    """The colleague hears whose call it is first, when the forward asks for it (replace() only
    then: it is the costly part of a plain decision)."""
    return replace(ring, whisper=owner.extension) if action.whisper else ring


def _offer(d: _Decision, owner: Employee, action: Action) -> tuple[Step, ...]:
    """The callback offer, when there is a route to call the client back through."""
    settings = action.callback
    route = (settings.route if settings else None) or d.policy.site.callback_route
    if settings is None or route is None:
        d.reasons.append(f"no callback route for {owner.extension}: no offer (set the action's route or site.callback_route)")
        return ()
    sound = announcement_sound(action.announcement, CALLBACK_OFFER) or CALLBACK_OFFER
    return (Offer(extension=owner.extension, endpoint=owner.endpoint, sound=sound, route=route,
                  attempts=settings.attempts, retry_after=settings.retry_after,
                  expires_after=settings.expires_after, digit_timeout=settings.digit_timeout),)


def _announced(action: Action, rings: list[Step], end: Drop) -> tuple[Step, ...]:
    """The forward's steps: its announcement, the rings, and how the call ends. With nobody left
    to ring there is nothing to announce."""
    if not any(isinstance(s, Ring) for s in rings):
        return (end,)
    sound = announcement_sound(action.announcement)
    head: list[Step] = [Announce(sound=sound, answer_first=action.answer_first)] if sound is not None else []
    return tuple(head + rings + [end])


def _department_rings(d: _Decision, department: Department, visited: tuple[str, ...]) -> list[Ring]:
    policy = d.policy
    members = []
    for m in department.members:
        emp = policy.employees.get(m)
        if emp is None or m in visited:
            continue
        if not d.working(emp):
            d.reasons.append(d.why_off(emp) + f" (department {department.id})")
            continue
        members.append(emp)
    targets = [Target(m.extension, m.endpoint) for m in members]
    if not targets:
        return []

    def ring(group: list[Target]) -> Ring:
        return Ring(targets=tuple(group), timeout=department.ring_time, role="forward", department=department.id)

    if department.strategy == "ringall":
        return [ring(targets)]
    if department.strategy == "memoryhunt":
        return [ring(targets[: i + 1]) for i in range(len(targets))]
    if department.strategy == "random":
        targets = targets[:]
        d.rng.shuffle(targets)
    return [ring([t]) for t in targets]
