"""Is the employee at work at this moment? Their absences first, then their weekly hours, both
read in their own time zone (wall-clock time, so a DST change moves nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Literal
from zoneinfo import ZoneInfo

from ..policy.model import WEEKDAYS, Absence, Employee, Schedule


@dataclass(frozen=True)
class Availability:
    working: bool
    rule: Literal["absence", "schedule"] | None  # what keeps them away; None at work
    detail: str  # for a person: "101 is off: vacation 2026-12-20..2027-01-10"


def _zone(employee: Employee, site_timezone: str) -> ZoneInfo:
    name = (employee.schedule.timezone if employee.schedule else None) or site_timezone
    return ZoneInfo(name)


def local_time(at: datetime, zone: ZoneInfo) -> datetime:
    """``at`` on the employee's wall clock. A naive ``at`` is UTC, like the app's clock."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(zone)


def absent(absences: tuple[Absence, ...], local: datetime) -> Absence | None:
    naive = local.replace(tzinfo=None)
    for a in absences:
        start = a.start if isinstance(a.start, datetime) else datetime.combine(a.start, time.min)
        end = a.end if isinstance(a.end, datetime) else datetime.combine(_as_date(a.end), time.max)
        if start <= naive <= end:
            return a
    return None


def _as_date(d: date | datetime) -> date:
    return d.date() if isinstance(d, datetime) else d


def in_hours(schedule: Schedule, local: datetime) -> bool:
    t, day = local.time().replace(tzinfo=None), local.weekday()
    for r in schedule.days[day]:
        if r.crosses_midnight:
            if t >= r.start:
                return True
        elif r.start <= t and (r.end is None or t < r.end):
            return True
    # Hours that began yesterday evening and run past midnight.
    return any(r.crosses_midnight and t < r.end for r in schedule.days[(day - 1) % 7])  # type: ignore[operator]


def at_work(employee: Employee, at: datetime, site_timezone: str) -> bool:
    """``availability(…).working`` without its words: what routing asks of every member of a
    department, and the no-engine files of every employee each minute."""
    if employee.schedule is None and not employee.absences:
        return True
    local = local_time(at, _zone(employee, site_timezone))
    if absent(employee.absences, local) is not None:
        return False
    return employee.schedule is None or in_hours(employee.schedule, local)


def availability(employee: Employee, at: datetime, site_timezone: str) -> Availability:
    who = employee.extension
    if employee.schedule is None and not employee.absences:
        return Availability(True, None, f"{who} has no schedule or absences: always rung")
    zone = _zone(employee, site_timezone)
    local = local_time(at, zone)
    now = f"{WEEKDAYS[local.weekday()]} {local:%Y-%m-%d %H:%M} {zone.key}"
    away = absent(employee.absences, local)
    if away is not None:
        return Availability(False, "absence", f"{who} is absent ({away.describe()}; now {now}): not rung")
    if employee.schedule is not None:
        hours = employee.schedule.describe()
        if not in_hours(employee.schedule, local):
            return Availability(False, "schedule", f"{who} is out of working hours ({hours}; now {now}): not rung")
        return Availability(True, None, f"{who} is in working hours ({hours}; now {now})")
    return Availability(True, None, f"{who} is not absent (now {now})")
