"""What the account pages need beyond the page's own settings: the page's public address (for
one-time links), how long a link lasts, where e-mail goes (the notices' SMTP settings) and the
optional directory (PBX_LDAP_*)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ...notices.settings import NoticeSettings, SmtpSettings
from ...settings import env_number
from ...users.directory import DirectorySettings
from ...users.links import INVITE_HOURS


@dataclass(frozen=True)
class AccountsConfig:
    # The page's address as users reach it (PBX_WEB_URL, e.g. https://pbx.example.com); links
    # are built on it. Unset: on the address the administrator's browser used.
    public_url: str | None = None
    link_hours: float = INVITE_HOURS
    smtp: SmtpSettings | None = None  # None: links are only shown, never e-mailed
    directory: DirectorySettings | None = None  # None: local accounts only

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "AccountsConfig":
        env = dict(os.environ if env is None else env)
        return cls(
            public_url=(env.get("PBX_WEB_URL") or "").rstrip("/") or None,
            link_hours=env_number(env, "PBX_WEB_LINK_HOURS", float, INVITE_HOURS) or INVITE_HOURS,
            smtp=NoticeSettings.from_env(env).smtp,
            directory=DirectorySettings.from_env(env),
        )
