"""The no-answer decision: what happens to a direct call, decided in one pure function.

Everything the decision depends on comes in as arguments (the policy the call started with,
who calls, the time, a seeded random source), so a test can replay any call exactly."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from ..policy.model import Action, Department, Employee, Policy
from ..sounds import announcement_sound, DROP_MESSAGE
from .plan import Announce, Drop, Plan, Ring, Step, Target, Voicemail


@dataclass(frozen=True)
class CallContext:
    extension: str  # the number the client dialled
    caller: str  # the client's number
    at: datetime


def decide(policy: Policy, call: CallContext, rng: random.Random | None = None) -> Plan:
    """Returns the plan for a direct call to ``call.extension``."""
    rng = rng or random.Random(0)
    site = policy.site
    employee = policy.employee(call.extension)
    if employee is None:
        # Not in the policy: ring the endpoint of the same name with the site defaults, so an
        # employee nobody has configured yet still gets their calls.
        employee = Employee(extension=call.extension, name=call.extension, endpoint=f"PJSIP/{call.extension}")
        reasons = [f"{call.extension} is not in the policy: site defaults"]
    else:
        reasons = []

    on_no_answer = employee.on_no_answer or site.on_no_answer
    reasons.append("employee's own setting" if employee.on_no_answer else "site default")
    on_busy = employee.on_busy or on_no_answer
    on_unreachable = employee.on_unreachable or on_no_answer

    first = Ring(
        targets=(Target(employee.extension, employee.endpoint),),
        timeout=_ring_time(policy, employee),
        role="employee",
    )

    def branch(action: Action) -> tuple[Step, ...]:
        return _action_steps(policy, employee, action, rng, visited=(employee.extension,), forwards_left=site.max_forwards)

    return Plan(
        extension=employee.extension,
        first=first,
        on_no_answer=branch(on_no_answer),
        on_busy=branch(on_busy),
        on_unreachable=branch(on_unreachable),
        reasons=tuple(reasons),
    )


def _ring_time(policy: Policy, employee: Employee) -> int:
    return employee.ring_time or policy.site.ring_time


def _drop(action: Action) -> Drop:
    return Drop(kind=action.drop, sound=DROP_MESSAGE if action.drop == "message" else None)


def _action_steps(
    policy: Policy,
    owner: Employee,
    action: Action,
    rng: random.Random,
    visited: tuple[str, ...],
    forwards_left: int,
) -> tuple[Step, ...]:
    if action.kind == "drop":
        return (_drop(action),)
    if action.kind == "voicemail":
        mailbox = owner.mailbox or f"{owner.extension}@default"
        return (Voicemail(mailbox=mailbox, extension=owner.extension),)

    # forward
    if forwards_left <= 0 or action.target is None or action.target in visited:
        # The chain is over its bound or would come back to someone already rung: end cleanly.
        return (_drop(action),)
    steps: list[Step] = []
    sound = announcement_sound(action.announcement)
    if sound is not None:
        steps.append(Announce(sound=sound, answer_first=action.answer_first))

    department = policy.departments.get(action.target)
    if department is not None:
        steps.extend(_department_rings(policy, department, rng, visited))
        steps.append(_drop(action))
        return tuple(steps)

    colleague = policy.employee(action.target)
    if colleague is None:
        return (_drop(action),)
    steps.append(
        Ring(targets=(Target(colleague.extension, colleague.endpoint),), timeout=_ring_time(policy, colleague), role="forward")
    )
    onward = colleague.on_no_answer
    if forwards_left > 1 and onward is not None and onward.kind == "forward":
        # The colleague's own forward continues the chain; its announcement was heard already.
        chained = _action_steps(policy, colleague, onward, rng, visited + (colleague.extension,), forwards_left - 1)
        steps.extend(s for s in chained if not isinstance(s, Announce))
        return tuple(steps)
    steps.append(_drop(action))
    return tuple(steps)


def _department_rings(
    policy: Policy, department: Department, rng: random.Random, visited: tuple[str, ...]
) -> list[Ring]:
    members = [policy.employees[m] for m in department.members if m in policy.employees and m not in visited]
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
        rng.shuffle(targets)
    return [ring([t]) for t in targets]
