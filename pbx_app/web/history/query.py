"""What a History request asks for (period, employee, missed only, voicemail only, page), read
bounded from its query string, who may see which calls, and the filter the database answers
it with (history/store.py CallFilter). Same for the page, the API and the CSV, so the three
always agree.

Whose calls: an administrator sees everyone's; an employee the calls counted for them and the
calls dialled to them (a call they missed that a colleague answered is theirs to see too).
The employee filter means the same: the calls that employee would see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Mapping
from zoneinfo import ZoneInfo

from ...history.rows import HistoryRow
from ...history.store import CallFilter
from ...users import User
from ...users.names import EXTENSION_RE

DEFAULT_DAYS = 7  # the period when none is given: today and the 6 days before
MAX_DAYS = 92  # a longer period is refused
PER_PAGE = 50
COUNT_CAP = 10_000  # calls counted for the totals and reachable by paging; past it: "over 10000 calls"
MAX_PER_PAGE = 200
MAX_PAGE = 100_000
FIRST_YEAR, LAST_YEAR = 2000, 2100
MAX_PARAM = 64  # any one query value longer than this is refused


class BadFilter(ValueError):
    """A filter the page cannot use: 400, with the message in English and its values, so the
    page can say it in the reader's language."""

    def __init__(self, message: str, **values: str):
        self.message_id = message
        self.values = values
        super().__init__(message.format(**values))

    def say(self, gettext=str) -> str:
        return gettext(self.message_id).format(**self.values)


class NotYours(PermissionError):
    """An employee asked for someone else's calls."""


@dataclass(frozen=True)
class Query:
    first_day: date
    last_day: date  # included
    employee: str | None = None
    missed: bool = False
    voicemail: bool = False  # only calls where a message was left
    page: int = 1
    per_page: int = PER_PAGE

    def period(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """[start, end) of the period, whole days in the site's time zone."""
        return (datetime.combine(self.first_day, time(), zone),
                datetime.combine(self.last_day + timedelta(days=1), time(), zone))

    def params(self, **changes) -> dict[str, str]:
        """As query parameters (for links: another page, the CSV of the same filters)."""
        values = {"from": self.first_day.isoformat(), "to": self.last_day.isoformat(), "employee": self.employee or "",
                  "missed": "1" if self.missed else "", "voicemail": "1" if self.voicemail else "",
                  "page": str(self.page), "per_page": str(self.per_page)}
        values.update({k: str(v) for k, v in changes.items()})
        return {k: v for k, v in values.items() if v and not (k == "page" and v == "1")
                and not (k == "per_page" and v == str(PER_PAGE))}


def _day(text: str, name: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError
        day = date.fromisoformat(text)
    except ValueError:
        raise BadFilter("'{name}' must be a date like 2026-11-30", name=name) from None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise BadFilter("'{name}' must be a date between {first} and {last}", name=name,
                        first=str(FIRST_YEAR), last=str(LAST_YEAR))
    return day


def _number(text: str, name: str, low: int, high: int) -> int:
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise BadFilter("'{name}' must be a whole number from {low} to {high}", name=name, low=str(low), high=str(high))
    return int(text)


def _flag(text: str) -> bool:
    return text.strip().lower() in ("1", "on", "true", "yes")


def parse(params: Mapping[str, str], today: date) -> Query:
    """A Query from the request's parameters; BadFilter for anything it cannot use."""
    for key in ("from", "to", "employee", "missed", "voicemail", "page", "per_page"):
        if len(params.get(key, "")) > MAX_PARAM:
            raise BadFilter("'{name}' is too long", name=key)
    last = _day(params["to"], "to") if params.get("to") else today
    first = _day(params["from"], "from") if params.get("from") else min(last, today) - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise BadFilter("the period's first day is after its last day")
    if (last - first).days + 1 > MAX_DAYS:
        raise BadFilter("the period is too long: at most {days} days", days=str(MAX_DAYS))
    employee = params.get("employee", "").strip() or None
    if employee is not None and not EXTENSION_RE.match(employee):
        raise BadFilter("'employee' must be an extension like 101")
    return Query(
        first_day=first, last_day=last, employee=employee,
        missed=_flag(params.get("missed", "")), voicemail=_flag(params.get("voicemail", "")),
        page=_number(params["page"], "page", 1, MAX_PAGE) if params.get("page") else 1,
        per_page=_number(params["per_page"], "per_page", 1, MAX_PER_PAGE) if params.get("per_page") else PER_PAGE,
    )


def whose(query: Query, user: User) -> str | None:
    """Whose calls the reader gets: None for everyone's (an administrator with no filter)."""
    if user.is_admin:
        return query.employee
    if query.employee not in (None, user.extension):
        raise NotYours(query.employee)
    return user.extension


def call_filter(query: Query, user: User, zone: ZoneInfo) -> CallFilter:
    """What the database is asked for: the period, whose calls (whose()), missed or voicemail only;
    newest first. NotYours before anything is read."""
    start, end = query.period(zone)
    return CallFilter(start, end, involving=whose(query, user), missed=query.missed, voicemail=query.voicemail)


@dataclass(frozen=True)
class Page:
    rows: list[HistoryRow]
    total: int  # counted up to COUNT_CAP: a larger total shows as "over" it
    missed: int
    number: int
    pages: int

    @property
    def more(self) -> bool:
        """More calls than were counted: the reader narrows the period, or exports the CSV."""
        return self.total >= COUNT_CAP


def page_of(rows: list[HistoryRow], query: Query, total: int, missed: int) -> Page:
    """One page of rows (already the page's slice), with the counts of the whole selection."""
    pages = max(1, -(-min(total, COUNT_CAP) // query.per_page))
    return Page(rows, total, missed, query.page, pages)
