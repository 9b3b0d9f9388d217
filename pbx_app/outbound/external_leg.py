"""How a ring step reaches a number outside the PBX (an employee's mobile, a forward to an
outside number): through a Local channel into the dialplan context ``pbx-external``
(dialplan/pbx_external.conf). That context waits the leg's join delay, presents the caller (or
the company's number) with the employee as the redirecting party (a Diversion header), dials the
site's trunk and asks whoever answers to confirm before the client is put through.

A Local channel is how one Dial() can ring desk phones and a mobile together while the mobile's
leg alone waits, is confirmed, and is cancelled when a desk answers: everything the leg needs
travels in its extension, since a Local channel gets no per-target variables.

The routing decision builds the string (``dial_string``); the dialplan reads it back."""

from __future__ import annotations

from dataclasses import dataclass

CONTEXT = "pbx-external"


@dataclass(frozen=True)
class ExternalLeg:
    employee: str  # whose call it is: the redirecting number, the name in the confirm prompt
    digits: str  # the number as the trunk wants it written
    trunk: str  # the carrier's PJSIP endpoint (site.outbound)
    delay: int = 0  # seconds after the ring starts before this leg joins it
    confirm: bool = True  # the answerer presses 1 before the client is put through
    present: str = ""  # the calling number shown instead of the client's ("" = the client's)


def dial_string(leg: ExternalLeg) -> str:
    """The Dial() target for ``leg``."""
    fields = (leg.employee, str(leg.delay), "1" if leg.confirm else "0", leg.present or "c", leg.digits, leg.trunk)
    return f"Local/{'~'.join(fields)}@{CONTEXT}"
