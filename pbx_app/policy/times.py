"""Working hours and absences as the sysadmin writes them:

    schedule:
      timezone: Europe/Moscow       # optional: the site's time zone
      mon-fri: "09:00-18:00"
      sat: ["10:00-12:00", "13:00-15:00"]
      sun: off
    absences:
      - {from: 2026-12-20, to: 2027-01-10, reason: vacation}
      - {from: "2026-11-30 14:00", to: "2026-11-30 18:00", reason: doctor}
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


from .document import kind
from .model import WEEKDAYS, Absence, Schedule, TimeRange
from .reader import Reader

_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
RANGE_HINT = "expected HH:MM-HH:MM, e.g. 09:00-18:00 (22:00-06:00 runs past midnight)"


def valid_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def timezone(r: Reader, node: dict, where: str) -> str | None:
    name = r.string(node, "timezone", where)
    if name is not None and not valid_timezone(name):
        r.error(node, "timezone", f"{where}.timezone: unknown time zone '{name}' (expected an IANA name such as Europe/Moscow)")
        return None
    return name


# A company's schedules repeat a few ranges and day lists thousands of times; both results are
# immutable, so each distinct text is parsed once.
@lru_cache(maxsize=4096)
def parse_range(text: str) -> TimeRange | None:
    m = _RANGE.match(text)
    if not m:
        return None
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        return None
    start = time(h1, m1)
    end = None if h2 == 24 else time(h2, m2)
    if end == start:
        return None  # empty, or a whole day written ambiguously: 00:00-24:00 says it clearly
    return TimeRange(start, end)


@lru_cache(maxsize=4096)
def _days(spec: str) -> tuple[int, ...] | None:
    """'mon-fri,sun' → (0, 1, 2, 3, 4, 6)."""
    days: list[int] = []
    for part in spec.lower().split(","):
        part = part.strip()
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            return None
        a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        days.extend(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return tuple(days)


def schedule(r: Reader, parent: dict, where: str) -> Schedule | None:
    if parent.get("schedule") is None:
        return None
    node = r.mapping(parent, "schedule", f"{where}.schedule")
    if node is None:
        return None
    w = f"{where}.schedule"
    days: list[list[TimeRange]] = [[] for _ in WEEKDAYS]
    given: dict[int, str] = {}
    for key, value in node.items():
        if key == "timezone":
            continue
        spec = _days(str(key))
        if spec is None:
            r.error(node, key, f"{w}: '{key}' is not a day or a range of days (mon, tue, … sun; e.g. mon-fri or sat,sun)", at_key=True)
            continue
        ranges = _ranges(r, node, key, f"{w}.{key}")
        for day in spec:
            if day in given:
                r.error(node, key, f"{w}.{key}: {WEEKDAYS[day]} is already given by '{given[day]}'", at_key=True)
                continue
            given[day] = str(key)
            days[day].extend(ranges)
    return Schedule(days=tuple(tuple(d) for d in days), timezone=timezone(r, node, w))


def _ranges(r: Reader, node: dict, key: Any, where: str) -> list[TimeRange]:
    value = node[key]
    if isinstance(value, str) and value.strip().lower() == "off":
        return []
    if value is None:
        hint = ' (inside {…} a comma ends the entry: quote day lists, "sat,sun": …)' if node.fa.flow_style() else ""
        r.error(node, key, f"{where}: no hours given, {RANGE_HINT}, or off{hint}", at_key=True)
        return []
    items = value if isinstance(value, list) else [value]
    result = []
    for i, item in enumerate(items):
        rng = parse_range(item) if isinstance(item, str) else None
        if rng is None:
            shown = repr(item) if isinstance(item, str) else kind(item)
            if isinstance(value, list):
                r.error(value, i, f"{where}: {shown} is not a time range, {RANGE_HINT}")
            else:
                r.error(node, key, f"{where}: {shown} is not a time range, {RANGE_HINT}, or off")
            continue
        result.append(rng)
    return result


def _moment(value: Any) -> date | datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        for fmt, cast in (("%Y-%m-%d", lambda d: d.date()), ("%Y-%m-%d %H:%M", lambda d: d), ("%Y-%m-%dT%H:%M", lambda d: d)):
            try:
                return cast(datetime.strptime(value.strip(), fmt))
            except ValueError:
                pass
    return None


def _as_datetime(value: date | datetime, end: bool) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time.max if end else time.min)


def absences(r: Reader, parent: dict, where: str) -> tuple[Absence, ...]:
    if parent.get("absences") is None:
        return ()
    items = r.seq(parent, "absences", f"{where}.absences")
    result = []
    for i, item in enumerate(items or []):
        w = f"{where}.absences[{i + 1}]"
        if not isinstance(item, dict):
            r.error(items, i, f"{w}: expected a mapping {{from: 2026-12-20, to: 2027-01-10, reason: vacation}}, got {kind(item)}")
            continue
        r.unknown_keys(item, {"from", "to", "reason"}, w)
        moments = {}
        for key in ("from", "to"):
            if item.get(key) is None:
                continue
            moments[key] = _moment(item[key])
            if moments[key] is None:
                r.error(item, key, f"{w}.{key}: {kind(item[key])} is not a date, expected YYYY-MM-DD or 'YYYY-MM-DD HH:MM'")
        if "from" not in item:
            r.error(item, None, f"{w}: 'from' is required (the first day away, YYYY-MM-DD)")
        start, end = moments.get("from"), moments.get("to", moments.get("from"))
        if start is None or end is None:
            continue
        if _as_datetime(end, True) < _as_datetime(start, False):
            r.error(item, "to", f"{w}.to: the absence ends ({end}) before it starts ({start})")
            continue
        result.append(Absence(start=start, end=end, reason=r.string(item, "reason", w) or "absent"))
    return tuple(result)
