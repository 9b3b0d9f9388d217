"""What the dialplan does on its own after a ring when no engine takes the caller back: the next
ring of the plan (with its announcement), then the plan's last step, packed as PBX_FB
(contract.Fallback). Pure: the flow leaves it on the channel before each ring, and the app-down
files (app_down.py) hold the same thing for a call no engine ever saw."""

from __future__ import annotations

from .. import contract as dp
from ..routing import Announce, Drop, Outcome, Plan, Ring, Step, Voicemail
from ..sounds import playback_name
from ..story import Cursor

# Flow branch names → the outcome of the ring that picks them, in PBX_FB's order.
BRANCHES = {"no_answer": Outcome.NO_ANSWER, "busy": Outcome.BUSY, "unreachable": Outcome.UNREACHABLE}


def next_fallback(steps: tuple[Step, ...], start: int, leg: int, call_id: str, branch: str = "",
                  unseen: str = "") -> dp.Fallback:
    """The next ring of ``steps`` from ``start`` (with its announcement), then its last step; ``leg``
    is the number of the last leg so far. With ``branch`` (the story's name of ``steps``), the
    ring also carries its whisper and the story's cursor while it rings (for pbx-carry).
    ``unseen``: for a call no engine will see (app_down.py), what each leg's userfield carries
    after ``fallback`` (history/unseen_calls.py reads it back)."""
    tail = f":fallback:{unseen}" if unseen else ":fallback"
    announce, ring, at = None, None, 0
    for index, step in enumerate(steps[start:], start):
        if isinstance(step, Announce) and ring is None:
            announce = step
        elif isinstance(step, Ring) and ring is None:
            ring, at = step, index
    last = steps[-1] if steps else Drop(kind="busy")
    fields: dict = {}
    if ring is not None:
        leg += 2 if announce else 1
        who = "+".join(t.extension for t in ring.targets)
        fields.update(dial="&".join(t.endpoint for t in ring.targets), ringtime=ring.timeout,
                      announce=playback_name(announce.sound) if announce else "",
                      leg=f"{call_id}:{leg}:{ring.role}:{who}{tail}",
                      exten=ring.department or ring.targets[0].extension)
        if branch:
            fields.update(whisper=ring.whisper, cursor=Cursor(branch, at, leg, True).encode())
    if isinstance(last, Voicemail):
        fields.update(then="voicemail", mailbox=last.mailbox, then_exten=last.extension,
                      then_leg=f"{call_id}:{leg + 1}:voicemail:{last.extension}{tail}")
    elif isinstance(last, Drop):
        fields.update(then=last.kind)
    return dp.Fallback(**fields)


def after_first_ring(plan: Plan, leg: int, call_id: str, unseen: str = "") -> dp.Fallbacks:
    """PBX_FB for the employee's first ring: one part per outcome of that ring."""
    return dp.Fallbacks(*(next_fallback(plan.branch(o), 0, leg, call_id, unseen=unseen) for o in BRANCHES.values()))


def carries(steps: tuple[Step, ...], start: int) -> bool:
    """The dialplan can carry ``steps`` from ``start`` exactly as the story would (PBX_FB's shape):
    [an announcement, as early media] a ring, then busy, the message or a mailbox; or that last
    step alone. A callback offer, a second ring or an announcement before a mailbox needs the
    engine (pbx-carry would pass them over, as the no-engine fallback does)."""
    rest = list(steps[start:])
    if not rest or not isinstance(rest[-1], (Drop, Voicemail)):
        return False
    head = rest[:-1]
    if head and isinstance(head[0], Announce) and not head[0].answer_first:
        head = head[1:]
        return len(head) == 1 and isinstance(head[0], Ring)
    return not head or (len(head) == 1 and isinstance(head[0], Ring))


def carries_after_first_ring(plan: Plan) -> bool:
    """Whatever the first ring's outcome, the dialplan can carry the rest."""
    return all(carries(plan.branch(o), 0) for o in BRANCHES.values())
