"""The e-mail that carries a one-time link to its person, when SMTP is configured (the notices'
PBX_SMTP_* settings). Sent on a worker thread with the SMTP timeout; a failure is reported to
the administrator, who still has the link on the page to pass on."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

from ...i18n import translator
from ...notices.settings import SmtpSettings
from ...notices.smtp import SendError, send_mail


def link_mail(smtp: SmtpSettings, to: str, name: str, url: str, kind: str, hours: float, language: str) -> EmailMessage:
    _ = translator(language).gettext
    mail = EmailMessage()
    mail["From"] = smtp.sender
    mail["To"] = to
    if kind == "reset":
        mail["Subject"] = _("Your telephony password was reset")
        intro = _("An administrator reset the password of your account %(name)s on the telephony settings page.") % {"name": name}
    else:
        mail["Subject"] = _("Your account on the telephony settings page")
        intro = _("An administrator made you an account, %(name)s, on the telephony settings page.") % {"name": name}
    body = _("Open this link to choose your password (it works once, for %(hours)g hours):") % {"hours": hours}
    mail.set_content(f"{intro}\n\n{body}\n{url}\n")
    return mail


async def send_link(smtp: SmtpSettings | None, to: str | None, name: str, url: str, kind: str, hours: float,
                    language: str) -> str | None:
    """None when the mail went (or there is nowhere to send it); else why it did not."""
    if smtp is None or not to:
        return None
    try:
        await asyncio.to_thread(send_mail, smtp, link_mail(smtp, to, name, url, kind, hours, language))
    except SendError as exc:
        return exc.reason
    return None
