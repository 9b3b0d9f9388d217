"""Reads SIPp message traces (-trace_msg) fast enough for tens of thousands of calls: when each
phone received its INVITEs and CANCELs, keyed by the client's number in From."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

_HEADER = re.compile(r"^-+ (\d{4}-\d\d-\d\d\s[\d:.]+)")
_FROM = re.compile(r"^From:.*?<sip:([^@>;]+)", re.IGNORECASE)


def received(path: Path, method: str) -> dict[str, float]:
    """Client number → when the phone first received ``method`` (epoch seconds)."""
    found: dict[str, float] = {}
    if not path.exists():
        return found
    at: float | None = None
    state = 0  # 0: outside, 1: after header, 2: in a received message of ``method``
    with path.open(errors="replace") as f:
        for line in f:
            if line.startswith("-----"):
                m = _HEADER.match(line)
                if m:
                    at = datetime.strptime(m.group(1).strip()[:26], "%Y-%m-%d %H:%M:%S.%f").timestamp()
                    state = 1
                continue
            if state == 1:
                if line.startswith(("UDP message received", "TCP message received")):
                    state = 3
                elif line.strip() and not line.startswith(("UDP", "TCP")):
                    state = 0
                elif line.startswith(("UDP message sent", "TCP message sent")):
                    state = 0
                continue
            if state == 3:
                if not line.strip():
                    continue
                state = 2 if line.startswith(method + " ") else 0
                continue
            if state == 2 and line[:5].lower() == "from:":
                m = _FROM.match(line)
                if m and at is not None:
                    found.setdefault(m.group(1), at)
                state = 0
    return found


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def forward_delays(employee_trace: Path, colleague_trace: Path) -> list[float]:
    """Per call, seconds from the employee's CANCEL (ring time over) to the colleague's INVITE."""
    cancels = received(employee_trace, "CANCEL")
    invites = received(colleague_trace, "INVITE")
    return [invites[n] - cancels[n] for n in invites.keys() & cancels.keys()]
