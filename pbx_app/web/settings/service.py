"""The settings' one way to the policy file: an employee's entry saved with the page's rules —
the version the editor started from, the input checked, the whole file validated, an audit
entry per setting changed written before the file is replaced, and the announcements a save
stops or starts using kept in their grace period."""

from __future__ import annotations

import logging
from typing import Any, Callable

from ...users import User
from ..state import Web
from .policy_file import FileChanged, PolicyBroken, Snapshot, StaleVersion, UnknownEmployee
from .view import employee_view

log = logging.getLogger(__name__)

# (snapshot, body, keep, ext) -> (the change to make to the entry, the audit entries:
# (action, before-of-view, after-of-view)); SettingError when the body does not check.
Edit = Callable[[Snapshot, dict, Callable[[str], Callable[[str], bool]], str],
                tuple[Callable[[Any], Any], list[tuple[str, Callable[[dict], Any], Callable[[dict], Any]]]]]


class NoEmployee(LookupError):
    """The policy has no such employee."""


class Stale(Exception):
    """Someone saved the setting since the editor's version: ``version`` and ``current`` (the
    view as it stands, None when the policy cannot be read now) are what to reload from."""

    def __init__(self, version: str, current: dict | None):
        self.version, self.current = version, current
        super().__init__("the setting was changed by someone else since this version")


async def save(web_: Web, user: User, address: str, ext: str, body: dict, version: str, edit: Edit) -> dict:
    """The employee's view after the save. Raises PolicyBroken, NoEmployee, SettingError, Stale,
    FileChanged (the audit says the change did not happen) or InvalidEdit; nothing is saved then."""
    snapshot = await web_.snapshot()
    if snapshot.policy.employee(ext) is None:
        raise NoEmployee(ext)
    store = web_.announcements

    def keep(slot: str) -> Callable[[str], bool]:
        current = snapshot.announcement_file(ext, slot)
        return lambda name: store.may_use(name, user, current)

    change, audits = edit(snapshot, body, keep, ext)

    def audit(before, after) -> None:  # runs in the save's worker thread
        was, now = employee_view(before, ext), employee_view(after, ext)
        for action, old, new in audits:
            web_.audit.record(action, user.name, role=user.role, address=address, employee=ext,
                              before=old(was), after=new(now),
                              version_before=before.version(ext), version_after=after.version(ext))

    try:
        saved = await web_.policy.edit(ext, change, version, before_write=audit)
    except StaleVersion as exc:
        try:
            current = employee_view(await web_.snapshot(), ext)
        except PolicyBroken:
            current = None
        raise Stale(exc.current, current) from exc
    except FileChanged as exc:
        if exc.audited:
            await web_.record(f"{audits[0][0]}_not_saved", user.name, role=user.role, address=address, employee=ext,
                              reason="the policy file changed on disk during the save")
        raise
    except UnknownEmployee as exc:
        raise NoEmployee(ext) from exc
    store.referenced(saved.old_text)  # a sound just dropped from a setting keeps its grace period
    store.referenced(saved.new_text)
    web_.saved()
    log.info("%s (%s) saved %s of %s", user.name, user.role, ", ".join(a for a, _, _ in audits), ext)
    return employee_view(saved.after, ext)
