"""Who may hear the voicemail message a call left, and which mailbox it is in.

The message itself is found as the notices find it (pbx_app/notices/voicemail.py): in the
owner's mailbox under PBX_VOICEMAIL_DIR, by the caller's channel and the call's times that the
journal holds, so no part of a path ever comes from the request. The mailbox is the policy's
for the employee whose mailbox took the call.

Who may listen: the mailbox's owner, the employees in the owner's ``voicemail_to`` (named
directly or through a department they belong to) and administrators."""

from __future__ import annotations

from ...history.records import CallRecord
from ...policy import Policy
from ...users import User


def owner_of(call: CallRecord) -> str:
    """The employee whose mailbox took the call."""
    leg = next((l for l in call.legs if l.role == "voicemail" and l.targets), None)
    return leg.targets[0] if leg else call.extension


def recipients(policy: Policy, owner: str) -> set[str]:
    """The extensions told of (and allowed to hear) the owner's messages, besides the owner."""
    employee = policy.employee(owner)
    found: set[str] = set()
    for item in employee.voicemail_to if employee else ():
        if item in policy.employees:
            found.add(item)
        elif item in policy.departments:
            found.update(policy.departments[item].members)
    return found  # e-mail addresses are for the notices, not for the page


def may_listen(user: User, owner: str, policy: Policy | None) -> bool:
    if user.is_admin or (user.extension and user.extension == owner):
        return True
    return bool(user.extension) and policy is not None and user.extension in recipients(policy, owner)


def mailbox(policy: Policy | None, owner: str) -> str:
    """box@context as app_voicemail names it: the policy's ``mailbox``, else owner@default."""
    employee = policy.employee(owner) if policy else None
    return (employee.mailbox if employee else None) or f"{owner}@default"
