"""The hourly limits on a call's legs outside the PBX (an employee's mobile, a forward to an
outside number), at the call: the decision put them in the plan by the policy alone (patterns,
trunk, the administrator's switch); here each outside number asks the guard, which counts it
(reserve) when it lets it through. A refused leg leaves the plan, with the reason; a ring left
with nobody to ring goes too, so the plan moves on to its next step.

A number is counted once per call however many branches of the plan hold it, and when the plan
is made, not when the leg rings: a limit is a bound on what a call may do (a mobile that joins
the ring after 10 s counts whether or not the desk answered first)."""

from __future__ import annotations

from dataclasses import replace

from ..history.outside_dropped import dropped
from ..policy.model import Policy
from ..routing.plan import Announce, OutsideTarget, Plan, Ring, Step
from .guard import OutboundGuard, Verdict

PURPOSE = "forward"


async def vet_plan(plan: Plan, guard: OutboundGuard | None, policy: Policy, ref: str = "") -> Plan:
    """``plan`` without the outside legs the guard refuses now. ``guard`` None (a process with no
    journal database): the legs stay, and the plan says their calls are not counted."""
    numbers = {(t.extension, t.number) for step in _steps(plan) if isinstance(step, Ring)
               for t in step.targets if isinstance(t, OutsideTarget)}
    if not numbers:
        return plan  # the usual call: nothing leaves the PBX, nothing to ask
    if guard is None:
        return replace(plan, reasons=plan.reasons + ("calls out are not counted against the hourly limits here "
                                                     "(no outbound guard in this process)",))
    refused: dict[tuple[str, str], Verdict] = {}
    for employee, number in sorted(numbers):
        verdict = await guard.check(policy, number, employee, PURPOSE, ref or plan.extension, reserve=True)
        if not verdict.allowed:
            refused[(employee, number)] = verdict
    if not refused:
        return plan
    reasons = tuple(dropped(number, employee, verdict.why) for (employee, number), verdict in sorted(refused.items()))

    def ring(step: Ring | None) -> Ring | None:
        if step is None:
            return None
        kept = tuple(t for t in step.targets if not isinstance(t, OutsideTarget) or (t.extension, t.number) not in refused)
        return step if len(kept) == len(step.targets) else (replace(step, targets=kept) if kept else None)

    def branch(steps: tuple[Step, ...]) -> tuple[Step, ...]:
        out: list[Step] = []
        for step in steps:
            if isinstance(step, Ring):
                kept = ring(step)
                if kept is None:
                    if out and isinstance(out[-1], Announce):
                        out.pop()  # "your call is being forwarded" to nobody: as decide.py leaves it out
                    continue
                step = kept
            out.append(step)
        return tuple(out)

    return replace(plan, first=ring(plan.first), on_no_answer=branch(plan.on_no_answer), on_busy=branch(plan.on_busy),
                   on_unreachable=branch(plan.on_unreachable), reasons=plan.reasons + reasons)


def _steps(plan: Plan):
    if plan.first is not None:
        yield plan.first
    yield from plan.on_no_answer
    yield from plan.on_busy
    yield from plan.on_unreachable
