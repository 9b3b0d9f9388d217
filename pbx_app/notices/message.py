"""A notice as an e-mail: subject and plain-text body in the recipient's language, times in the
site's time zone, and for a voicemail message its recording attached (up to a size; past it
the mail says so). The Message-ID is made from the notice's key, so a mail system that sees a
notice twice (a sender that died between sending and journaling it) can tell."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..i18n import translator
from .happened import person, what_happened
from .voicemail import Message

MB = 1024 * 1024


def local_time(facts: dict) -> str:
    """'2026-11-29 23:30:51 (Europe/Moscow)': the call's start in the site's time zone."""
    if not facts.get("started_at"):
        return "?"
    try:
        zone = ZoneInfo(facts.get("timezone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    moment = datetime.fromisoformat(facts["started_at"]).astimezone(zone)
    return f"{moment:%Y-%m-%d %H:%M:%S} ({zone.key})"


def compose(notice_id: str, kind: str, recipient: str, language: str, facts: dict, sender: str,
            message: Message | None = None, recording: bytes | None = None, limit: int = 10 * MB) -> EmailMessage:
    """``message``: the voicemail recording found for the call (None: not found); ``recording``:
    its bytes when it is within ``limit``."""
    t = translator(language)
    _ = t.gettext
    caller = facts.get("caller") or _("unknown number")
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = recipient
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = f"<{notice_id}@pbx-app.notices>"
    if kind == "outbound_limit":  # to administrators, about no call in particular
        mail["Subject"] = _("Calls out stopped: the hourly limit is reached")
        mail.set_content("\n".join([
            _("Time: {time}").format(time=local_time(facts)),
            _("The site's limit of {count} calls out an hour (site.outbound.per_hour.site) is reached. Callbacks "
              "are refused until the count of the last hour drops. Many requests at once may be toll fraud: "
              "see the log and History.").format(count=facts.get("per_site", "?")),
        ]) + "\n")
        return mail
    if kind == "voicemail":
        mail["Subject"] = _("Voicemail message from {caller}").format(caller=caller)
    else:
        mail["Subject"] = _("Missed call from {caller}").format(caller=caller)
    lines = [
        _("Caller: {caller}").format(caller=caller),
        _("Time: {time}").format(time=local_time(facts)),
        _("Employee: {employee}").format(employee=person(facts, facts.get("employee"))),
        _("What happened:"),
        *(f"  - {line}" for line in what_happened(facts, t)),
    ]
    if kind == "voicemail":
        lines.append("")
        lines.append(_("Mailbox: {mailbox}").format(mailbox=facts.get("mailbox") or "?"))
        if message is None:
            lines.append(_("The recording was not found in the mailbox (deleted already?)."))
        else:
            if message.duration is not None:
                lines.append(_("Length of the message: {seconds} s").format(seconds=message.duration))
            if recording is None:
                lines.append(_("The recording ({size:.1f} MB) is larger than {limit:.0f} MB and is not attached; "
                               "listen to it in the mailbox.").format(size=message.size / MB, limit=limit / MB))
            else:
                lines.append(_("The recording is attached."))
    mail.set_content("\n".join(lines) + "\n")
    if kind == "voicemail" and recording is not None:
        mail.add_attachment(recording, maintype="audio", subtype="wav", filename=_attachment_name(facts))
    return mail


def _attachment_name(facts: dict) -> str:
    digits = "".join(ch for ch in facts.get("caller") or "" if ch.isalnum())[:32] or "unknown"
    stamp = (facts.get("started_at") or "")[:19].replace(":", "").replace("-", "").replace("T", "-")
    return f"voicemail-{digits}-{stamp or 'call'}.wav"
