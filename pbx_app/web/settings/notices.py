"""Who is told: the employee's own e-mail (missed calls, voicemail) and the extra recipients of
their voicemail messages — colleagues, departments or addresses — as the page edits them and as
they are written into the employee's entry (``email``, ``voicemail_to``). Bounded as the loader
bounds them (loader.py): 20 recipients, 254 characters an address."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from ...policy import Policy
from ...policy.loader import MAX_ADDRESS, MAX_RECIPIENTS, looks_like_address
from .no_answer import SettingError
from .policy_file import add_key


@dataclass(frozen=True)
class NoticesSetting:
    email: str | None
    voicemail_to: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"email": self.email, "voicemail_to": list(self.voicemail_to)}


def notices_from_json(data: Any, policy: Policy, extension: str) -> NoticesSetting:
    if not isinstance(data, dict):
        raise SettingError({"notices": "expected an object {email, voicemail_to}"})
    problems: dict[str, str] = {}
    email = data.get("email")
    if email is None or email == "":
        email = None
    elif not isinstance(email, str) or not looks_like_address(email.strip()):
        problems["email"] = f"an e-mail address (name@domain, at most {MAX_ADDRESS} characters), or empty"
        email = None
    else:
        email = email.strip()
    recipients = _recipients(data.get("voicemail_to"), policy, extension, problems)
    employee = policy.employee(extension)
    if recipients and employee is not None and not employee.mailbox:
        problems["voicemail_to"] = f"{extension} has no voicemail box; an administrator sets one up first"
    if problems:
        raise SettingError(problems)
    return NoticesSetting(email, recipients)


def _recipients(data: Any, policy: Policy, extension: str, problems: dict[str, str]) -> tuple[str, ...]:
    if data is None:
        return ()
    if not isinstance(data, list) or len(data) > MAX_RECIPIENTS:
        problems["voicemail_to"] = f"a list of at most {MAX_RECIPIENTS} recipients"
        return ()
    result: list[str] = []
    for item in data:
        text = item.strip() if isinstance(item, str) and len(item) <= MAX_ADDRESS else None
        if not text:
            problems["voicemail_to"] = f"each recipient is a colleague, a department or an address of at most {MAX_ADDRESS} characters"
        elif "@" in text:
            if not looks_like_address(text):
                problems["voicemail_to"] = f"'{text[:60]}' is not an e-mail address (name@domain)"
            elif text.lower() not in (r.lower() for r in result):
                result.append(text)
        elif text == extension:
            problems["voicemail_to"] = "the mailbox's owner is always told; list the others"
        elif text not in policy.employees and text not in policy.departments:
            problems["voicemail_to"] = f"'{text[:40]}' is not a colleague or department in the policy"
        elif text not in result:
            result.append(text)
    return tuple(result)


def apply_notices(body: CommentedMap, setting: NoticesSetting) -> None:
    """Writes ``email`` and ``voicemail_to``; an unchanged value keeps its bytes."""
    if setting.email is None:
        body.pop("email", None)
    elif body.get("email") != setting.email:
        if "email" in body:
            body["email"] = setting.email
        else:
            keys = list(body)
            add_key(body, "email", setting.email, keys.index("mailbox") + 1 if "mailbox" in keys else None)
    old = body.get("voicemail_to")
    if not setting.voicemail_to:
        body.pop("voicemail_to", None)
    elif not isinstance(old, list) or [str(v).strip() for v in old] != list(setting.voicemail_to):
        seq = CommentedSeq(DoubleQuotedScalarString(v) for v in setting.voicemail_to)
        seq.fa.set_flow_style()
        if "voicemail_to" in body:
            body["voicemail_to"] = seq
        else:
            add_key(body, "voicemail_to", seq)
