"""What the web page needs to know, taken from the app's Settings (PBX_* variables)."""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..announcements.store import MAX_BYTES
from ..sounds import CUSTOM_DIR
from .accounts.config import AccountsConfig

# sounds/<lang>/*.wav: in a source checkout next to the package; an installed wheel carries
# them as data files under its prefix (pyproject's data-files).
REPO_SOUNDS = Path(__file__).resolve().parents[2] / "sounds"
INSTALLED_SOUNDS = Path(sys.prefix) / "share" / "pbx_app" / "sounds"
STANDARD_SOUNDS = REPO_SOUNDS if REPO_SOUNDS.is_dir() else INSTALLED_SOUNDS
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class WebConfig:
    policy_path: Path
    users_path: Path = Path("var/users.json")
    audit_path: Path = Path("var/audit.jsonl")
    audit_max_bytes: int = 10 * 1024 * 1024  # then it rotates (audit.py)
    audit_keep: int = 10
    # Where this process writes announcements; Asterisk reads the same files at CUSTOM_DIR.
    announcements_dir: Path = Path(CUSTOM_DIR)
    secure_cookies: bool = False  # set when the page is served over HTTPS (a reverse proxy)
    max_upload_bytes: int = MAX_BYTES
    standard_sounds: Path = STANDARD_SOUNDS  # sounds/<lang>/forward-notice.wav, to preview it
    # Host header names the page answers for ("*": any); a port in the header is ignored.
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    # Peers whose X-Forwarded-For is believed (the site's reverse proxies); nobody's by default.
    trusted_proxies: tuple[Network, ...] = ()
    upload_quota_bytes: int = 20 * 1024 * 1024
    uploads_per_hour: int = 20
    conversions: int = 2
    unused_upload_seconds: float = 24 * 3600.0
    # History on the page: the call journal the engines ship to, and Asterisk's voicemail spool
    # (the folder holding <context>/<box>/INBOX/msgNNNN.wav) for playing messages back.
    database_url: str = "sqlite:////var/lib/pbx_app/journal.db"
    voicemail_dir: Path = Path("/var/spool/asterisk/voicemail")
    # Accounts and sessions live in database_url too; users_path is the older users file,
    # imported once (users/legacy_file.py).
    accounts: AccountsConfig = field(default_factory=AccountsConfig)

    @classmethod
    def from_settings(cls, settings) -> "WebConfig":
        return cls(
            policy_path=Path(settings.policy_path),
            users_path=Path(getattr(settings, "users_path", cls.users_path)),
            audit_path=Path(getattr(settings, "audit_path", cls.audit_path)),
            audit_max_bytes=int(getattr(settings, "audit_max_mb", 10.0) * 1024 * 1024),
            audit_keep=int(getattr(settings, "audit_keep", cls.audit_keep)),
            announcements_dir=Path(getattr(settings, "announcements_dir", cls.announcements_dir)),
            secure_cookies=bool(getattr(settings, "web_secure_cookies", False)),
            allowed_hosts=tuple(h.lower() for h in settings.web_allowed_hosts),
            trusted_proxies=networks(settings.web_trusted_proxies),
            upload_quota_bytes=int(settings.web_upload_quota_mb * 1024 * 1024),
            uploads_per_hour=settings.web_uploads_per_hour,
            conversions=settings.web_conversions,
            unused_upload_seconds=settings.web_unused_upload_hours * 3600.0,
            database_url=getattr(settings, "database_url", cls.database_url),
            voicemail_dir=Path(getattr(settings, "voicemail_dir", cls.voicemail_dir)),
            accounts=AccountsConfig.from_env(),
        )


def networks(entries: tuple[str, ...] | list[str]) -> tuple[Network, ...]:
    """PBX_WEB_TRUSTED_PROXIES: addresses or CIDR blocks, e.g. ``127.0.0.1,10.0.0.0/8``."""
    found = []
    for entry in entries:
        try:
            found.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise SystemExit(f"PBX_WEB_TRUSTED_PROXIES: '{entry}' is not an address or a network like 10.0.0.0/8") from None
    return tuple(found)
