"""Sending one e-mail over SMTP: STARTTLS (the server's certificate checked against the
system's trust store, or PBX_SMTP_CA_FILE), then a login when a user is set. The standard
smtplib, on a worker thread, with a timeout on every step. Errors come out as SendError saying
whether trying again can help; the password never appears in them."""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage

from .settings import SmtpSettings


class SendError(Exception):
    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent  # the server refused for good: retrying will not change it


def tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.ca_file)


def send_mail(settings: SmtpSettings, mail: EmailMessage, tls: ssl.SSLContext | None = None) -> None:
    """Blocking: call it with asyncio.to_thread."""
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
            smtp.ehlo()
            if settings.starttls:
                if not smtp.has_extn("starttls"):
                    raise SendError(f"{settings.host}:{settings.port} does not offer STARTTLS (PBX_SMTP_STARTTLS=1)")
                smtp.starttls(context=tls or tls_context(settings))
                smtp.ehlo()
            if settings.user:
                smtp.login(settings.user, settings.password or "")
            smtp.send_message(mail, from_addr=settings.sender)
    except SendError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        # Wrong credentials stay wrong, but an operator may fix them: retried until given up.
        raise SendError(f"login refused: {exc.smtp_code} {_text(exc.smtp_error)}") from None
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        raise SendError(f"recipient refused: {code} {_text(text)}", permanent=500 <= code < 600) from None
    except smtplib.SMTPResponseException as exc:
        raise SendError(f"{exc.smtp_code} {_text(exc.smtp_error)}", permanent=500 <= exc.smtp_code < 600
                        and exc.smtp_code not in (530, 535)) from None
    except (smtplib.SMTPException, ssl.SSLError, socket.timeout, OSError) as exc:
        raise SendError(f"{settings.host}:{settings.port}: {type(exc).__name__}: {exc}") from None


def _text(raw) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())[:300]
