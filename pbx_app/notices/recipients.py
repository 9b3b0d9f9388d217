"""Who is told: an employee's own e-mail for a missed call; for a voicemail message the mailbox
owner and everyone its voicemail_to names (extensions, departments' members, addresses). Each
address once, in the language of the employee it belongs to (a bare address: the owner's)."""

from __future__ import annotations

from ..policy.model import Employee, Policy

MAX_RECIPIENTS = 50  # a department of hundreds must not turn one message into a mass mailing


def language_of(policy: Policy, employee: Employee | None) -> str:
    return (employee.language if employee and employee.language else None) or policy.site.language


def person_recipient(policy: Policy, extension: str) -> list[tuple[str, str]]:
    employee = policy.employee(extension)
    if employee is None or not employee.email:
        return []
    return [(employee.email.strip().lower(), language_of(policy, employee))]


def mailbox_recipients(policy: Policy, owner: str) -> list[tuple[str, str]]:
    """(address, language) pairs, the owner first."""
    out: dict[str, str] = {}
    employee = policy.employee(owner)
    owner_language = language_of(policy, employee)

    def add(address: str | None, language: str) -> None:
        if address and len(out) < MAX_RECIPIENTS:
            out.setdefault(address.strip().lower(), language)

    if employee is not None:
        add(employee.email, owner_language)
        for who in employee.voicemail_to:
            if "@" in who:
                add(who, owner_language)
            elif who in policy.employees:
                add(policy.employees[who].email, language_of(policy, policy.employees[who]))
            elif who in policy.departments:
                for member in policy.departments[who].members:
                    colleague = policy.employee(member)
                    add(colleague.email if colleague else None, language_of(policy, colleague))
    return list(out.items())
