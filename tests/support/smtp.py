"""A real SMTP server for the notices tests: aiosmtpd on 127.0.0.1, STARTTLS required (a
self-signed certificate made for the test by openssl) and AUTH LOGIN (the only mechanism it
offers) required after it. It keeps every message it accepted; ``stop()`` and ``start()`` again
on the same port play a server that goes away and comes back."""

from __future__ import annotations

import email
import email.policy
import ssl
import subprocess
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.net import free_port

USER = "pbx"
PASSWORD = "s3cret-pw"


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class _Inbox:
    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse: set[str] = set()  # recipients answered 550

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content,
                                                      policy=email.policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK queued"


class SmtpServer:
    def __init__(self, folder: Path):
        self.cert, self.key = self_signed(folder)
        self.port = free_port()
        self.inbox = _Inbox()
        self.logins: list[tuple[str, bool]] = []
        self.controller: Controller | None = None

    @property
    def messages(self) -> list[EmailMessage]:
        return self.inbox.messages

    def env(self) -> dict[str, str]:
        """The notifier's settings for this server (the password file is written beside the cert)."""
        secret = self.cert.parent / "smtp-password"
        secret.write_text(PASSWORD + "\n")
        return {"PBX_SMTP_HOST": "127.0.0.1", "PBX_SMTP_PORT": str(self.port), "PBX_SMTP_STARTTLS": "1",
                "PBX_SMTP_USER": USER, "PBX_SMTP_PASSWORD_FILE": str(secret), "PBX_SMTP_FROM": "pbx@example.test",
                "PBX_SMTP_CA_FILE": str(self.cert)}

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
        self.logins.append((mechanism, ok))
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    def start(self) -> "SmtpServer":
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(self.cert, self.key)
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, tls_context=tls,
                                     require_starttls=True, authenticator=self._authenticate, auth_required=True,
                                     auth_require_tls=True, auth_exclude_mechanism=["PLAIN"], ready_timeout=10)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
