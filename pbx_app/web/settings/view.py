"""What the page and the API show about an employee, built from one read of the policy file."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from ...policy import Policy
from ...policy.collector import collector_paused
from ...routing.availability import availability
from ...users import User
from .mobile import mobile_from_policy
from .no_answer import describe, describe_action, setting_from_policy, site_setting, slot_setting
from .policy_file import Snapshot
from .schedule import absences_json, hours_json

SLOTS = ("on_busy", "on_unreachable", "on_absent")


def initials(name: str) -> str:
    parts = [p for p in name.replace("-", " ").split() if p]
    return "".join(p[0] for p in parts[:2]).upper() or "?"


ALL_TARGETS_UP_TO = 300  # colleagues sent with a profile; a bigger company's are searched for


def targets(policy: Policy, extension: str) -> dict[str, Any]:
    """Who a forward can go to: the real colleagues and departments of the policy. In a big
    company not every colleague comes with the page (``complete`` false): those of the
    employee's departments and the ones their settings name do; the page asks for others
    (``find_colleagues``)."""
    if len(policy.employees) <= ALL_TARGETS_UP_TO:
        chosen = [e for e in policy.employees if e != extension]
    else:
        chosen = _close_colleagues(policy, extension)
    return {
        "colleagues": [{"id": ext, "name": policy.employees[ext].name} for ext in chosen],
        "departments": [
            {"id": d.id, "name": d.name, "members": list(d.members)} for d in policy.departments.values()
        ],
        "complete": len(policy.employees) <= ALL_TARGETS_UP_TO,
    }


def _close_colleagues(policy: Policy, extension: str) -> list[str]:
    employee = policy.employees.get(extension)
    named = [a.target for a in (getattr(employee, slot, None) for slot in ("on_no_answer", *SLOTS)) if a is not None]
    named += [a.then.target for a in (getattr(employee, slot, None) for slot in ("on_no_answer", *SLOTS))
              if a is not None and a.then is not None]
    named += list(employee.voicemail_to) if employee else []
    teams = [m for d in policy.departments.values() if extension in d.members for m in d.members]
    seen: dict[str, None] = {}
    for ext in [*named, *teams]:
        if ext in policy.employees and ext != extension:
            seen[ext] = None
    return list(seen)[:ALL_TARGETS_UP_TO]


def find_colleagues(snapshot: Snapshot, extension: str, query: str, limit: int = 20) -> list[dict[str, str]]:
    """Colleagues of ``extension`` whose name, extension or department holds every word of
    ``query``: what the page's forward pickers offer in a big company."""
    found = _matching(search_index(snapshot), query)
    employees = snapshot.policy.employees
    return [{"id": ext, "name": employees[ext].name} for ext in found if ext != extension][:limit]


def _matching(index: list[tuple[str, str]], query: str) -> list[str]:
    candidates = index
    for word in query.casefold().split():
        candidates = [item for item in candidates if word in item[1]]
    return [ext for ext, _ in candidates]


def employee_view(snapshot: Snapshot, extension: str, gettext: Callable[[str], str] = str) -> dict[str, Any] | None:
    """``gettext``: the summaries in the reader's language (the page's; the API's are English)."""
    policy = snapshot.policy
    employee = policy.employee(extension)
    if employee is None:
        return None
    setting, inherited = setting_from_policy(employee, snapshot.raw_announcement(extension))
    site = site_setting(policy)
    slots = {}
    for slot in SLOTS:
        own = slot_setting(employee, slot, snapshot.raw_announcement(extension, slot))
        slots[slot] = {"setting": None if own is None else own.to_json(), "summary": describe_action(own, policy, gettext)}
    now = availability(employee, datetime.now(timezone.utc), policy.site.timezone)
    return {
        "extension": extension,
        "name": employee.name,
        "initials": initials(employee.name),
        "version": snapshot.version(extension),
        "setting": setting.to_json(),
        "inherited": inherited,
        "summary": describe(setting, policy, gettext),
        "site": {"ring_time": policy.site.ring_time, "summary": describe(site, policy, gettext),
                 "callback_route": policy.site.callback_route},
        "slots": slots,  # busy, unreachable, away: None is "same as no answer"
        "hours": hours_json(employee.schedule),  # None: always at work
        "hours_summary": employee.schedule.describe() if employee.schedule else None,
        "absences": absences_json(employee.absences),
        "now": {"working": now.working, "rule": now.rule},
        "timezone": (employee.schedule.timezone if employee.schedule else None) or policy.site.timezone,
        "site_timezone": policy.site.timezone,
        "mailbox": employee.mailbox,
        "notices": {"email": employee.email, "voicemail_to": list(employee.voicemail_to)},
        "mobile": mobile_from_policy(employee).to_json(),
        "targets": targets(policy, extension),
    }


PER_PAGE = 50
MAX_PER_PAGE = 100
MAX_QUERY = 100


def search_arguments(args) -> tuple[str, int, int]:
    """(query, page, per page) from a request's query string, bounded; ValueError names the
    argument that is wrong."""
    query = args.get("q", "")
    if len(query) > MAX_QUERY:
        raise ValueError(f"q: at most {MAX_QUERY} characters")
    numbers = []
    for name, default, top in (("page", 1, 100_000), ("per_page", PER_PAGE, MAX_PER_PAGE)):
        text = args.get(name, "")
        if not text:
            numbers.append(default)
            continue
        if not text.isdigit() or len(text) > 6 or not 1 <= int(text) <= top:
            raise ValueError(f"{name}: expected a whole number from 1 to {top}")
        numbers.append(int(text))
    return query, numbers[0], numbers[1]


def search_index(snapshot: Snapshot) -> list[tuple[str, str]]:
    """(extension, what a search looks in: name, extension, departments' names and ids), built
    once per read of the policy and kept with it."""
    if snapshot.search is None:
        # Paused: its tens of thousands of new strings would otherwise set off full collections
        # over the policy the page holds (at 50,000 employees the first search took 2.1 s, not ms).
        with collector_paused():
            teams: dict[str, list[str]] = {}
            for dep in snapshot.policy.departments.values():
                for member in dep.members:
                    teams.setdefault(member, []).extend((dep.name, dep.id))
            snapshot.search = [(ext, "\n".join([e.name, ext, *teams.get(ext, ())]).casefold())
                               for ext, e in snapshot.policy.employees.items()]
    return snapshot.search


def find_employees(snapshot: Snapshot, user: User, query: str = "", page: int = 1, per_page: int = PER_PAGE,
                   gettext: Callable[[str], str] = str) -> dict[str, Any]:
    """One page of the employees ``user`` may see whose name, extension or department holds
    every word of ``query`` (any case); the one whose extension is the query comes first."""
    found = _matching(search_index(snapshot), query)
    if not user.is_admin:
        found = [ext for ext in found if user.may_edit(ext)]
    exact = query.strip()
    if exact in snapshot.policy.employees and exact in found:
        found.remove(exact)
        found.insert(0, exact)
    pages = max(1, -(-len(found) // per_page))
    page = min(page, pages)
    rows = [_row(snapshot, ext, gettext) for ext in found[(page - 1) * per_page:page * per_page]]
    return {"employees": rows, "total": len(found), "page": page, "pages": pages, "per_page": per_page, "query": query}


def _row(snapshot: Snapshot, ext: str, gettext: Callable[[str], str]) -> dict[str, Any]:
    employee = snapshot.policy.employees[ext]
    setting, inherited = setting_from_policy(employee, snapshot.raw_announcement(ext))
    return {"extension": ext, "name": employee.name, "initials": initials(employee.name),
            "summary": describe(setting, snapshot.policy, gettext), "inherited": inherited}


def visible_employees(snapshot: Snapshot, user: User, gettext: Callable[[str], str] = str) -> list[dict[str, Any]]:
    """Administrators see everyone; an employee sees only themselves."""
    rows = []
    for ext, employee in snapshot.policy.employees.items():
        if not user.may_edit(ext):
            continue
        setting, inherited = setting_from_policy(employee, snapshot.raw_announcement(ext))
        rows.append({"extension": ext, "name": employee.name, "initials": initials(employee.name),
                     "summary": describe(setting, snapshot.policy, gettext), "inherited": inherited})
    return rows
