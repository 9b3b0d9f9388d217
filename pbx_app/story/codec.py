"""How a plan travels on the caller's channel, the same text in both modes: zlib-compressed,
base64url-encoded (no commas, so the dialplan can pass it back as one AGI argument). ARI mode
keeps it whole in PBX_PLAN; FastAGI mode in chunks (contract.PLAN_PARTS), without the plan's
reasons (they stay in the journal's CallStarted)."""

from __future__ import annotations

import base64
import dataclasses
import zlib

from ..contract import PLAN_PARTS
from ..routing import Plan

CHUNK = 1500


class PlanTooLarge(ValueError):
    pass


def pack_plan(plan: Plan, reasons: bool = False) -> str:
    """The plan as one text. ARI mode leaves it whole in PBX_PLAN, with the plan's ``reasons``
    (no length limit there; an engine taking the call over writes them again)."""
    packed = zlib.compress((plan if reasons else dataclasses.replace(plan, reasons=())).to_json().encode(), 9)
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


def encode_plan(plan: Plan) -> dict[str, str]:
    """The plan's text in PLAN_PARTS chunks: FastAGI mode passes them back as one argument, and
    Asterisk cuts an AGI command at 2048 bytes."""
    text = pack_plan(plan)
    chunks = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]
    if len(chunks) > len(PLAN_PARTS):
        raise PlanTooLarge(f"the plan takes {len(text)} characters, over {CHUNK * len(PLAN_PARTS)}")
    return {name: chunk for name, chunk in zip(PLAN_PARTS, chunks)}


def decode_plan(text: str) -> Plan:
    """The plan from the concatenated PLAN_PARTS values (or the plain JSON engines wrote before:
    a call in flight through an upgrade is taken over all the same)."""
    if text.startswith("{"):
        return Plan.from_json(text)
    packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return Plan.from_json(zlib.decompressobj().decompress(packed, 1 << 20).decode())
