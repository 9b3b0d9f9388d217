"""How a ring step reaches a number outside the PBX (an employee's mobile, a forward to an
outside number): through a Local channel into the dialplan context ``pbx-external``
(dialplan/pbx_external.conf). That context waits the leg's join delay, presents the caller (or
the company's number) with the employee as the redirecting party (a Diversion header), dials the
site's trunk and asks whoever answers to confirm before the client is put through.

A Local channel is how one Dial() can ring desk phones and a mobile together while the mobile's
leg alone waits, is confirmed, and is cancelled when a desk answers: everything the leg needs
travels in its extension, since a Local channel gets no per-target variables.

The routing decision builds the string (``dial_string``); the dialplan reads it back. Its fields are
joined by ``*``: every other character that could join them already means something on the way
(``&`` between Dial() targets, ``^`` in PBX_RING, ``|`` in PBX_FB, ``~`` in the no-engine plan files,
``,`` between Dial()'s arguments). ``/n`` keeps the Local channel in the call after the answer, so
the caller's CDR has one row for this leg (the Local channel's own is disabled in the dialplan)
instead of one before and one after Asterisk would optimise the Local channel away."""

from __future__ import annotations

from dataclasses import dataclass

CONTEXT = "pbx-external"
SEPARATOR = "*"
# Characters no field may hold: they would split it on its way to the dialplan.
_RESERVED = frozenset(SEPARATOR + "&^|~,@/;() \t\n")


@dataclass(frozen=True)
class ExternalLeg:
    employee: str  # whose call it is: the redirecting number, the name in the confirm prompt
    digits: str  # the number as the trunk wants it written
    trunk: str  # the carrier's PJSIP endpoint (site.outbound)
    delay: int = 0  # seconds after the ring starts before this leg joins it
    confirm: bool = True  # the answerer presses 1 before the client is put through
    present: str = ""  # the calling number shown instead of the client's ("" = the client's)


def dial_string(leg: ExternalLeg) -> str:
    """The Dial() target for ``leg``; ValueError naming the field that cannot travel in it."""
    for name in ("employee", "digits", "trunk", "present"):
        value = getattr(leg, name)
        bad = sorted(set(value) & _RESERVED)
        if bad or (not value and name != "present"):
            raise ValueError(f"external leg {name} {value!r}: " + (f"holds {''.join(bad)!r}" if bad else "is empty"))
    if leg.delay < 0:
        raise ValueError(f"external leg delay {leg.delay}: must not be negative")
    fields = (leg.employee, str(leg.delay), "1" if leg.confirm else "0", leg.present or "c", leg.digits, leg.trunk)
    return f"Local/{SEPARATOR.join(fields)}@{CONTEXT}/n"
