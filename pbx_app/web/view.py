"""What the page and the API show about an employee, built from one read of the policy file."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from ..policy import Policy
from ..routing.availability import availability
from ..users import User
from .policy_file import Snapshot
from .schedule_setting import absences_json, hours_json
from .setting import describe, describe_action, setting_from_policy, site_setting, slot_setting

SLOTS = ("on_busy", "on_unreachable", "on_absent")


def initials(name: str) -> str:
    parts = [p for p in name.replace("-", " ").split() if p]
    return "".join(p[0] for p in parts[:2]).upper() or "?"


def targets(policy: Policy, extension: str) -> dict[str, list[dict[str, Any]]]:
    """Who a forward can go to: the real colleagues and departments of the policy."""
    return {
        "colleagues": [
            {"id": e.extension, "name": e.name} for e in policy.employees.values() if e.extension != extension
        ],
        "departments": [
            {"id": d.id, "name": d.name, "members": list(d.members)} for d in policy.departments.values()
        ],
    }


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
        "targets": targets(policy, extension),
    }


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
