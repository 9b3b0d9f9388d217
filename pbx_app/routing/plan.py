"""What a call will do, step by step. The flow carries a Plan out; it never decides."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Literal, Union

from ..answered import answered_on


class Outcome(str, enum.Enum):
    """How one ring step ended, as the caller's side sees it."""

    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    UNREACHABLE = "unreachable"
    CALLER_HUNG_UP = "caller_hung_up"

    @classmethod
    def from_dialstatus(cls, status: str) -> "Outcome":
        return _DIALSTATUS.get(status.upper(), cls.UNREACHABLE)


# Asterisk's DIALSTATUS values; CONGESTION and CHANUNAVAIL both mean the phone could not be reached.
_DIALSTATUS = {
    "ANSWER": Outcome.ANSWERED,
    "NOANSWER": Outcome.NO_ANSWER,
    "BUSY": Outcome.BUSY,
    "CANCEL": Outcome.CALLER_HUNG_UP,
    "CHANUNAVAIL": Outcome.UNREACHABLE,
    "CONGESTION": Outcome.UNREACHABLE,
}


def branch_name(outcome: "Outcome | None") -> str:
    """The plan branch a first ring's outcome leads to (no answer when nobody was rung)."""
    if outcome is Outcome.BUSY:
        return "busy"
    if outcome is Outcome.UNREACHABLE:
        return "unreachable"
    return "no_answer"


@dataclass(frozen=True)
class Target:
    """A person to ring: their extension (for history) and their Dial() string."""

    extension: str
    endpoint: str
    outside = False
    label = ""  # where it rings, when not on the desk phone (OutsideTarget)


@dataclass(frozen=True)
class OutsideTarget(Target):
    """A leg outside the PBX (routing/external_leg.py): ``label`` says where it rings, "mobile"
    (the employee's own) or the outside number as written; ``number`` its digits, for the hourly
    limit. A subclass, so that a desk phone's Target stays two fields: one is made for every
    phone of every plan."""

    label: str = ""
    number: str = ""  # the international digits dialled
    delay: int = 0  # seconds into the ring before it joins
    confirm: bool = True  # the answerer presses 1 before the client is put through
    outside = True


@dataclass(frozen=True)
class Ring:
    targets: tuple[Target, ...]
    timeout: int
    role: Literal["employee", "forward"]
    department: str | None = None
    type: Literal["ring"] = "ring"
    # A forward to a colleague: they hear "forwarded call for <whisper>" (the extension of the
    # employee whose call it is, said digit by digit) before the client is put through; "" none.
    whisper: str = ""

    def answered_by(self, peer: str | None) -> str | None:
        """Who of the targets picked up, from the answering channel's name (DIALEDPEERNAME or
        the bridge peer): ``PJSIP/101-0000002a`` is target PJSIP/101's; a channel that is none
        of them is named as it is. An outside leg answering reads "101 on mobile"
        (answered.answered_on)."""
        if not peer:
            return None
        for target in self.targets:
            # A channel is named tech/resource-<id> (a Local one: …-<id>;1), without the
            # target's options (Local/…@context/n).
            if peer.startswith("/".join(target.endpoint.split("/", 2)[:2]) + "-"):
                return answered_on(target.extension, target.label)
        return peer


@dataclass(frozen=True)
class Announce:
    sound: str  # a media URI such as sound:pbx_app/forward-notice
    answer_first: bool = False
    type: Literal["announce"] = "announce"


@dataclass(frozen=True)
class Voicemail:
    mailbox: str
    extension: str
    type: Literal["voicemail"] = "voicemail"


@dataclass(frozen=True)
class Drop:
    kind: Literal["busy", "message"]
    sound: str | None = None  # message: what is played before the hangup
    type: Literal["drop"] = "drop"


@dataclass(frozen=True)
class Offer:
    """A callback offer: the client is answered and hears ``sound``; pressing 1 stores a request to
    call them back when ``extension`` is free, and ends the call. Anything else: the next steps."""

    extension: str  # who calls the client back
    endpoint: str  # their Dial() string: rung first when the callback is made
    sound: str  # the offer (a media URI)
    route: str  # Dial() template for the client, {number}: their digits
    attempts: int
    retry_after: int
    expires_after: int
    digit_timeout: int = 5
    type: Literal["offer"] = "offer"


Step = Union[Ring, Announce, Voicemail, Drop, Offer]


def _fields(value: object) -> dict:
    if isinstance(value, Ring) and not value.whisper:
        return {k: v for k, v in value.__dict__.items() if k != "whisper"}
    if hasattr(value, "__dataclass_fields__"):
        return value.__dict__
    raise TypeError(f"{type(value).__name__} is not part of a plan")


@dataclass(frozen=True)
class Plan:
    """``first`` rings the employee (None when they are known to be away); its outcome picks the
    branch, whose steps run in order until someone answers or the call ends."""

    extension: str
    first: Ring | None
    on_no_answer: tuple[Step, ...]
    on_busy: tuple[Step, ...]
    on_unreachable: tuple[Step, ...]
    reasons: tuple[str, ...] = field(default=())
    # Which rule decided what happens when the employee is not reached: crm, absence, schedule,
    # profile (the employee's own setting) or default (the site's).
    rule: str = "default"

    def branch(self, outcome: Outcome | None) -> tuple[Step, ...]:
        if outcome is Outcome.BUSY:
            return self.on_busy
        if outcome is Outcome.UNREACHABLE:
            return self.on_unreachable
        return self.on_no_answer

    def to_json(self) -> str:
        # Each step's own fields, read in place: asdict() deep-copies the plan first, which was
        # most of the cost of the plan's one write per call.
        return json.dumps(self, default=_fields, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        raw = json.loads(text)

        def step(d: dict) -> Step:
            kind = d.pop("type")
            if kind == "ring":
                d["targets"] = tuple(OutsideTarget(**t) if "number" in t else Target(**t) for t in d["targets"])
                return Ring(**d)
            return {"announce": Announce, "voicemail": Voicemail, "drop": Drop, "offer": Offer}[kind](**d)

        return cls(
            extension=raw["extension"],
            first=step(raw["first"]) if raw["first"] else None,  # type: ignore[arg-type]
            on_no_answer=tuple(step(s) for s in raw["on_no_answer"]),
            on_busy=tuple(step(s) for s in raw["on_busy"]),
            on_unreachable=tuple(step(s) for s in raw["on_unreachable"]),
            reasons=tuple(raw["reasons"]),
            rule=raw.get("rule", "default"),
        )
