"""The voicemail message a call left, and who may hear it.

Asterisk's app_voicemail keeps each message as msgNNNN.wav with msgNNNN.txt beside it, under
<spool>/voicemail/<context>/<box>/<folder>/ (PBX_VOICEMAIL_DIR is that voicemail folder). The
.txt names the caller's channel (callerchan) and when the message began (origtime): the
journal knows the call's channel name and times, so the message is found from the call alone;
no part of a path ever comes from the request. The mailbox is the policy's for the employee
whose mailbox took the call.

Who may listen: the mailbox's owner, the employees in the owner's ``voicemail_to`` (named
directly or through a department they belong to) and administrators."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

from ..history.records import CallRecord
from ..policy import Policy
from ..users import User

FOLDERS = ("INBOX", "Old", "Urgent", "Work", "Family", "Friends")  # app_voicemail's folders
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a box or a context we build a path from
_MESSAGE = re.compile(r"^msg\d{4}\.txt$")
MAX_INFO = 16 * 1024  # a message's .txt is read up to this
MAX_MESSAGES = 2000  # per folder looked at (app_voicemail's maxmsg is 100 by default)
EARLY = timedelta(seconds=5)  # the message's origtime (whole seconds) against the call's times
LATE = timedelta(seconds=60)


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


def mailbox(policy: Policy | None, owner: str) -> tuple[str, str] | None:
    """(context, box) as app_voicemail names it: the policy's ``mailbox``, else owner@default."""
    employee = policy.employee(owner) if policy else None
    box, _, context = ((employee.mailbox if employee else None) or f"{owner}@default").partition("@")
    context = context or "default"
    return (context, box) if _NAME.match(box) and _NAME.match(context) else None


def _info(path: Path) -> dict[str, str]:
    with open(path, "rb") as f:
        text = f.read(MAX_INFO).decode("utf-8", "replace")
    return {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in text.splitlines()) if _}


def find_message(voicemail_dir: Path, where: tuple[str, str], call: CallRecord) -> Path | None:
    """The WAV of the message this call left, or None. Reads the disk: call it in a thread."""
    if call.started_at is None:
        return None
    earliest = call.started_at - EARLY
    latest = (call.ended_at or call.started_at + timedelta(hours=1)) + LATE
    box_dir = voicemail_dir / where[0] / where[1]
    for folder in FOLDERS:
        try:
            names = sorted(p.name for p in (box_dir / folder).iterdir())[:MAX_MESSAGES]
        except OSError:
            continue
        for name in names:
            if not _MESSAGE.match(name):
                continue
            try:
                info = _info(box_dir / folder / name)
                when = datetime.fromtimestamp(int(info.get("origtime", "")), call.started_at.tzinfo)
            except (OSError, ValueError, OverflowError):
                continue
            if call.channel_name and info.get("callerchan") != call.channel_name:
                continue
            wav = box_dir / folder / (name[:-4] + ".wav")
            if earliest <= when <= latest and wav.is_file():
                return wav
    return None
