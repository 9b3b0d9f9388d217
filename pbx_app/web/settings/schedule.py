"""Working hours, absences and "while away" as the page sees them, and as they are written into
the employee's entry — in the shape a sysadmin writes by hand (policy/times.py):

    schedule:
      mon-fri: "09:00-18:00"
      sat: ["10:00-13:00", "14:00-16:00"]
    absences:
      - {from: 2026-12-20, to: 2027-01-10, reason: vacation}
    on_absent: {action: voicemail}

Input from the page is checked here first and bounded (a few ranges a day, a few dozen absences,
one short line of reason), so a mistake gets a message naming the field; the loader then checks
the whole file again before it is saved."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from ...policy import Policy, times
from ...policy.model import WEEKDAYS, Absence, Schedule
from ...policy.reader import Reader
from ...policy.times import parse_range, valid_timezone
from ..http.bodies import writable
from .no_answer import NoAnswerSetting, SettingError, action_from_json
from .policy_file import add_key, apply_action

MAX_RANGES_PER_DAY = 6
MAX_ABSENCES = 50
MAX_REASON = 60
MAX_MOMENT = 16  # "YYYY-MM-DD HH:MM"
FIRST_YEAR, LAST_YEAR = 2000, 2100
REASONS = ("vacation", "sick")  # the page's choices; anything else is "other" with its own text
_TIMEZONE = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+){0,2}$")


@dataclass(frozen=True)
class ScheduleSetting:
    hours: Schedule | None  # None: always at work
    absences: tuple[Absence, ...]
    on_absent: NoAnswerSetting | None  # None: the no-answer action, without ringing them


# ---- policy → page ------------------------------------------------------------------------------


def moment_text(value: date | datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else value.isoformat()


def hours_json(schedule: Schedule | None) -> dict[str, Any] | None:
    if schedule is None:
        return None
    return {"timezone": schedule.timezone, "days": [[str(r) for r in day] for day in schedule.days]}


def absences_json(absences: tuple[Absence, ...]) -> list[dict[str, str]]:
    return [{"from": moment_text(a.start), "to": moment_text(a.end), "reason": a.reason} for a in absences]


# ---- page → setting -----------------------------------------------------------------------------


def schedule_from_json(data: Any, policy: Policy, extension: str,
                       file_exists: Callable[[str], bool]) -> ScheduleSetting:
    """Checks what the page sent: {hours, absences, on_absent}; raises SettingError naming each
    bad field."""
    if not isinstance(data, dict):
        raise SettingError({"schedule": "expected an object"})
    problems: dict[str, str] = {}
    hours = _hours(data.get("hours"), problems)
    absences = _absences(data.get("absences"), problems)
    on_absent = None
    try:
        on_absent = action_from_json(data.get("on_absent"), policy, extension, file_exists, "on_absent")
    except SettingError as exc:
        problems.update({f"on_absent.{k}": v for k, v in exc.problems.items()})
    if problems:
        raise SettingError(problems)
    return ScheduleSetting(hours, absences, on_absent)


def _hours(data: Any, problems: dict[str, str]) -> Schedule | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        problems["hours"] = "expected an object {timezone, days} or null (always at work)"
        return None
    zone = data.get("timezone")
    if zone is not None and (not isinstance(zone, str) or len(zone) > 64 or not _TIMEZONE.match(zone)
                             or not _zone_ok(zone)):
        problems["hours.timezone"] = "an IANA time zone such as Europe/Moscow, or empty for the site's"
        zone = None
    days = data.get("days")
    if not isinstance(days, list) or len(days) != 7:
        problems["hours.days"] = "expected 7 lists of ranges, Monday first"
        return None
    result = []
    for i, day in enumerate(days):
        name = f"hours.{WEEKDAYS[i]}"
        if not isinstance(day, list) or len(day) > MAX_RANGES_PER_DAY:
            problems[name] = f"at most {MAX_RANGES_PER_DAY} ranges a day"
            result.append(())
            continue
        ranges = []
        for item in day:
            rng = parse_range(item) if isinstance(item, str) and len(item) <= 16 else None
            if rng is None:
                shown = repr(item[:16]) if isinstance(item, str) else "a value"
                problems[name] = f"{shown} is not a time range HH:MM-HH:MM (22:00-06:00 runs past midnight)"
            elif rng in ranges:
                problems[name] = f"{rng} is given twice"
            else:
                ranges.append(rng)
        result.append(tuple(sorted(ranges, key=lambda r: r.start)))
    return Schedule(days=tuple(result), timezone=zone)


def _zone_ok(name: str) -> bool:
    try:
        return valid_timezone(name)
    except OSError:  # a folder of the zone database, such as "Europe"
        return False


def _absences(data: Any, problems: dict[str, str]) -> tuple[Absence, ...]:
    if data is None:
        return ()
    if not isinstance(data, list) or len(data) > MAX_ABSENCES:
        problems["absences"] = f"a list of at most {MAX_ABSENCES} absences"
        return ()
    result = []
    for i, item in enumerate(data):
        name = f"absences[{i + 1}]"
        if not isinstance(item, dict):
            problems[name] = "expected {from, to, reason}"
            continue
        start, end = _moment(item.get("from")), _moment(item.get("to") or item.get("from"))
        reason = _reason(item.get("reason"))
        if start is None or end is None:
            problems[name] = f"dates are YYYY-MM-DD (or YYYY-MM-DD HH:MM), years {FIRST_YEAR}..{LAST_YEAR}"
        elif _as_datetime(end, True) < _as_datetime(start, False):
            problems[name] = "the absence ends before it starts"
        elif reason is None:
            problems[name] = f"the reason is one line of at most {MAX_REASON} characters"
        else:
            result.append(Absence(start, end, reason))
    return tuple(result)


def _moment(value: Any) -> date | datetime | None:
    if not isinstance(value, str) or len(value) > MAX_MOMENT:
        return None
    for fmt in ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"):
        try:
            moment = datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
        if not FIRST_YEAR <= moment.year <= LAST_YEAR:
            return None
        return moment.date() if fmt == "%Y-%m-%d" else moment
    return None


def _as_datetime(value: date | datetime, end: bool) -> datetime:
    return value if isinstance(value, datetime) else datetime.combine(value, datetime.max.time() if end else datetime.min.time())


def _reason(value: Any) -> str | None:
    """vacation, sick, or the person's own words: one line, no control characters."""
    if value is None or value == "":
        return "absent"
    if not isinstance(value, str) or len(value) > MAX_REASON or not writable(value) or "\n" in value or "\r" in value:
        return None
    value = " ".join(value.split())
    return value or "absent"


# ---- setting → YAML -----------------------------------------------------------------------------


def apply_schedule(body: CommentedMap, setting: ScheduleSetting) -> None:
    """Writes ``setting`` into the employee's entry. What did not change keeps its bytes: an
    unchanged schedule is not touched, an unchanged absence keeps its line and comments."""
    old = Reader("<entry>")
    old_hours = times.schedule(old, body, "entry")
    old_absences = times.absences(old, body, "entry")
    if setting.hours is None:
        body.pop("schedule", None)
    elif setting.hours != old_hours:
        _write_hours(body, setting.hours)
    if not setting.absences:
        body.pop("absences", None)
    elif setting.absences != old_absences:
        _write_absences(body, setting.absences, old_absences)
    apply_action(body, "on_absent", setting.on_absent)


def _write_hours(body: CommentedMap, hours: Schedule) -> None:
    node = body.get("schedule")
    if not isinstance(node, CommentedMap):
        node = CommentedMap()
        if body.fa.flow_style():
            node.fa.set_flow_style()
        add_key(body, "schedule", node)
    for key in [k for k in node if k != "timezone"]:
        del node[key]
    if hours.timezone is None:
        node.pop("timezone", None)
    elif node.get("timezone") != hours.timezone:
        node["timezone"] = hours.timezone
    for days, ranges in _groups(hours):
        if len(ranges) == 1:
            node[days] = DoubleQuotedScalarString(str(ranges[0]))
        else:
            seq = CommentedSeq(DoubleQuotedScalarString(str(r)) for r in ranges)
            seq.fa.set_flow_style()
            node[days] = seq


def _groups(hours: Schedule):
    """('mon-fri', ranges), ('sat', ranges)…: consecutive days with the same hours, as a
    sysadmin writes them; days off are left out (not listed is off)."""
    i = 0
    while i < 7:
        j = i
        while j + 1 < 7 and hours.days[j + 1] == hours.days[i]:
            j += 1
        if hours.days[i]:
            yield (WEEKDAYS[i] if i == j else f"{WEEKDAYS[i]}-{WEEKDAYS[j]}"), hours.days[i]
        i = j + 1


def _write_absences(body: CommentedMap, absences: tuple[Absence, ...], old: tuple[Absence, ...]) -> None:
    items = body.get("absences")
    # An absence that is still there keeps its own node (its quoting, its inner comments).
    same = isinstance(items, CommentedSeq) and len(items) == len(old)
    kept = {a: i for i, a in enumerate(old)} if same else {}
    seq = CommentedSeq()
    for a in absences:
        i = kept.pop(a, None)
        seq.append(_absence_node(a) if i is None else items[i])
        if i is not None and i in items.ca.items:  # its end-of-line comment
            seq.ca.items[len(seq) - 1] = items.ca.items[i]
    if body.fa.flow_style():
        seq.fa.set_flow_style()
    if isinstance(items, CommentedSeq):
        body["absences"] = seq
    else:
        add_key(body, "absences", seq)


def _absence_node(a: Absence) -> CommentedMap:
    node = CommentedMap()
    node["from"] = _moment_yaml(a.start)
    node["to"] = _moment_yaml(a.end)
    # The person's own words, quoted: no text they type can become YAML structure.
    node["reason"] = a.reason if a.reason in (*REASONS, "absent") else DoubleQuotedScalarString(a.reason)
    node.fa.set_flow_style()
    return node


def _moment_yaml(value: date | datetime) -> Any:
    return DoubleQuotedScalarString(moment_text(value)) if isinstance(value, datetime) else value

