"""A call's reason saying an outside leg (a mobile, an outside number) was left out at the call
by the outbound guard: outbound/forwards.py writes it into the plan's reasons, history reads it
back so that a manager sees why the mobile did not ring ("79001234567 not rung: the hour's limit
of calls out is reached"). One format, in one place."""

from __future__ import annotations

import re

_FORMAT = "the outside leg to {number} for {employee} is dropped: {why}"
_READ = re.compile(r"^the outside leg to (?P<number>\S+) for (?P<employee>\S+) is dropped: (?P<why>.+)$")


def dropped(number: str, employee: str, why: str) -> str:
    return _FORMAT.format(number=number, employee=employee, why=why)


def read_dropped(reason: str) -> tuple[str, str, str] | None:
    """(number, employee, why) of a reason ``dropped`` wrote; None for any other reason."""
    m = _READ.match(reason)
    return (m["number"], m["employee"], m["why"]) if m else None
