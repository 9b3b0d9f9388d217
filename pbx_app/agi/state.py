"""What a call in FastAGI mode keeps on its own channel between requests, so that any AGI
server (this one restarted, or another one) can take the next request.

- PBX_PLAN, PBX_PLAN2 … PBX_PLAN4: the call's plan, zlib-compressed and base64url-encoded
  (no commas, so the dialplan can pass it back as one AGI argument), in chunks because
  Asterisk cuts an AGI command at 2048 bytes.
- PBX_STATE: where the call stands, ``branch:index:leg:dialled:MAC``, or ``end`` once its
  journal is closed. MAC signs the cursor, the plan and the channel's uniqueid with the key from
  the shared secret (secret.py): `next` and `hangup` are refused for a state or plan anyone
  altered, or one copied from another call."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import zlib
from dataclasses import dataclass

from ..routing import Plan

PLAN_VARIABLES = ("PBX_PLAN", "PBX_PLAN2", "PBX_PLAN3", "PBX_PLAN4")
CHUNK = 1500
ENDED = "end"


class PlanTooLarge(ValueError):
    pass


class BadSignature(ValueError):
    pass


def _mac(key: bytes, call_id: str, cursor: str, plan: str) -> str:
    digest = hmac.new(key, "\n".join((call_id, cursor, plan)).encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(key: bytes, call_id: str, cursor: str, plan: str) -> str:
    """PBX_STATE for ``cursor`` (Cursor.encode()) of the call ``call_id`` whose PBX_PLAN* is ``plan``."""
    return f"{cursor}:{_mac(key, call_id, cursor, plan)}"


def verify(key: bytes, call_id: str, state: str, plan: str) -> str:
    """The cursor of a PBX_STATE the server signed for this call and plan; BadSignature otherwise."""
    cursor, _, mac = state.rpartition(":")
    if not cursor or not hmac.compare_digest(mac.encode(), _mac(key, call_id, cursor, plan).encode()):
        raise BadSignature("the state or plan on the channel is not the one this server signed")
    return cursor


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
