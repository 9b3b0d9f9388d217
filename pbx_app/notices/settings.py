"""The notifier's settings, from the environment. The SMTP password comes from a file
(PBX_SMTP_PASSWORD_FILE) and is kept out of every repr and log line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..settings import env_number

MB = 1024 * 1024


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    starttls: bool = True
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "pbx@localhost"
    timeout: float = 30.0  # seconds for one connection and one message
    ca_file: str | None = None  # a CA bundle to check the server's certificate by (a private CA); None: the system's


@dataclass(frozen=True)
class NoticeSettings:
    smtp: SmtpSettings | None = None  # None: no e-mail (PBX_SMTP_HOST unset)
    webhook_url: str | None = None
    webhook_timeout: float = 5.0
    voicemail_dir: Path = Path("/var/spool/asterisk/voicemail")
    max_attachment_bytes: int = 10 * MB
    poll_interval: float = 2.0  # seconds between looks for finished calls
    batch: int = 50  # calls (and notices) taken per look
    # A call started this long ago is not told of any more; also how far back a restarted
    # notifier looks for calls it has not seen.
    max_age: float = 24 * 3600.0
    retry_min: float = 30.0  # seconds before the first retry of a failed notice; doubles
    retry_max: float = 900.0
    give_up_after: float = 12 * 3600.0  # a notice not sent this long after it was made is given up
    lease: float = 120.0  # a claimed notice is another sender's to take after this (a sender that died)
    keep_days: float = 90.0  # notices journaled this long, then removed

    @property
    def enabled(self) -> bool:
        return self.smtp is not None or self.webhook_url is not None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "NoticeSettings":
        env = dict(os.environ if env is None else env)
        return cls(
            smtp=_smtp(env),
            webhook_url=env.get("PBX_NOTICE_WEBHOOK_URL") or None,
            webhook_timeout=env_number(env, "PBX_NOTICE_WEBHOOK_TIMEOUT", float, cls.webhook_timeout),
            voicemail_dir=Path(env.get("PBX_VOICEMAIL_DIR") or cls.voicemail_dir),
            max_attachment_bytes=int(env_number(env, "PBX_NOTICE_MAX_ATTACHMENT_MB", float, cls.max_attachment_bytes / MB) * MB),
            poll_interval=env_number(env, "PBX_NOTICE_POLL", float, cls.poll_interval) or cls.poll_interval,
            max_age=env_number(env, "PBX_NOTICE_MAX_AGE", float, cls.max_age),
            retry_min=env_number(env, "PBX_NOTICE_RETRY_MIN", float, cls.retry_min) or cls.retry_min,
            retry_max=env_number(env, "PBX_NOTICE_RETRY_MAX", float, cls.retry_max) or cls.retry_max,
            give_up_after=env_number(env, "PBX_NOTICE_GIVE_UP_AFTER", float, cls.give_up_after),
        )


def notices_enabled(env: dict[str, str]) -> bool:
    """Whether `pbx-app run` starts a notifier: only when there is somewhere to send notices."""
    return bool(env.get("PBX_SMTP_HOST") or env.get("PBX_NOTICE_WEBHOOK_URL"))


def _smtp(env: dict[str, str]) -> SmtpSettings | None:
    host = env.get("PBX_SMTP_HOST", "").strip()
    if not host:
        return None
    password = None
    secret = env.get("PBX_SMTP_PASSWORD_FILE")
    if secret:
        try:
            password = Path(secret).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SystemExit(f"PBX_SMTP_PASSWORD_FILE={secret}: cannot read it ({exc.strerror})") from None
    starttls = env.get("PBX_SMTP_STARTTLS", "1").strip().lower() not in ("0", "no", "false", "off")
    user = env.get("PBX_SMTP_USER") or None
    if user and not starttls and host not in ("127.0.0.1", "localhost", "::1"):
        # A login over a plain connection would send the password in the clear.
        raise SystemExit("PBX_SMTP_USER is set with PBX_SMTP_STARTTLS=0: the password would cross the network unencrypted")
    return SmtpSettings(
        host=host,
        port=int(env_number(env, "PBX_SMTP_PORT", float, 587)),
        starttls=starttls,
        user=user,
        password=password,
        sender=env.get("PBX_SMTP_FROM") or f"pbx@{host}",
        timeout=env_number(env, "PBX_SMTP_TIMEOUT", float, SmtpSettings.timeout) or SmtpSettings.timeout,
        ca_file=env.get("PBX_SMTP_CA_FILE") or None,
    )
