"""How the call story (pbx_app/story) travels over FastAGI: the AGI arguments of `next` and
`hangup` are its Report, and its Instruction becomes the channel variables pbx-agi reads
(dialplan/pbx_agi.conf). The names are contract.py's."""

from __future__ import annotations

from .. import contract as dp
from ..story import Instruction, Report

# The `next`/`hangup` arguments after STATE and PLAN, in pbx_agi.conf's order.
REPORT_FIELDS = ("dialstatus", "hangupcause", "peer", "answered_ms", "playback", "vmstatus", "vm_before", "vm_after")


def report_from_args(args: list[str]) -> Report:
    return Report(**dict(zip(REPORT_FIELDS, (args + [""] * len(REPORT_FIELDS))[: len(REPORT_FIELDS)])))


def channel_variables(instruction: Instruction, state: str) -> dict[str, str]:
    """PBX_DO first and PBX_STATE last: the order they are set in when they cannot go in one command."""
    i = instruction
    step: dict[str, str] = {}
    if i.do == "ring":
        step = {dp.TO: i.to, dp.DIAL_STRING: i.dial, dp.RINGTIME: str(i.ringtime), dp.LEG: i.leg, dp.WHISPER: i.whisper}
    elif i.do in ("announce", "message"):
        step = {dp.SOUND: i.sound, dp.ANSWER_NOW: "1" if i.answer_first else ""}
    elif i.do == "voicemail":
        step = {dp.TO: i.to, dp.MAILBOX: i.mailbox, dp.LEG: i.leg}
    elif i.do == "offer":
        step = {dp.LEG: i.leg, dp.SOUND: i.sound, dp.OFFER_TIMEOUT: str(i.offer_timeout)}
    return {dp.DO: dp.AGI_LABELS.get(i.do, i.do), **step, dp.STATE: state}
