"""What a call in FastAGI mode keeps on its own channel between requests, so that any AGI
server (this one restarted, or another one) can take the next request.

- PBX_PLAN, PBX_PLAN2 … PBX_PLAN4: the call's plan, zlib-compressed and base64url-encoded
  (no commas, so the dialplan can pass it back as one AGI argument), in chunks because
  Asterisk cuts an AGI command at 2048 bytes.
- PBX_STATE: where the call stands, ``branch:index:leg:dialled``, or ``end`` once its journal
  is closed."""

from __future__ import annotations

import base64
import dataclasses
import zlib
from dataclasses import dataclass

from ..routing import Plan

PLAN_VARIABLES = ("PBX_PLAN", "PBX_PLAN2", "PBX_PLAN3", "PBX_PLAN4")
CHUNK = 1500
ENDED = "end"


class PlanTooLarge(ValueError):
    pass


def encode_plan(plan: Plan) -> dict[str, str]:
    """The channel variables holding ``plan`` (its reasons stay in the journal, not here)."""
    packed = zlib.compress(dataclasses.replace(plan, reasons=()).to_json().encode(), 9)
    text = base64.urlsafe_b64encode(packed).decode().rstrip("=")
    chunks = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]
    if len(chunks) > len(PLAN_VARIABLES):
        raise PlanTooLarge(f"the plan takes {len(text)} characters, over {CHUNK * len(PLAN_VARIABLES)}")
    return {name: chunk for name, chunk in zip(PLAN_VARIABLES, chunks)}


def decode_plan(text: str) -> Plan:
    """The plan from the concatenated PBX_PLAN* values."""
    packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return Plan.from_json(zlib.decompressobj().decompress(packed, 1 << 20).decode())


@dataclass
class Cursor:
    """Which branch of the plan, which step in it, the last leg number, and whether a Dial()
    has run (after one, the rest of the call must not leave a CDR row of its own)."""

    branch: str  # "first", "no_answer", "busy", "unreachable"
    index: int
    leg: int
    dialled: bool = False

    def encode(self) -> str:
        return f"{self.branch}:{self.index}:{self.leg}:{int(self.dialled)}"

    @classmethod
    def decode(cls, text: str) -> "Cursor":
        branch, index, leg, dialled = text.split(":")
        if branch not in ("first", "no_answer", "busy", "unreachable"):
            raise ValueError(f"unknown branch {branch!r}")
        return cls(branch, int(index), int(leg), dialled == "1")
