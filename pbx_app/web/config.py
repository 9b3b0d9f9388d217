"""What the web page needs to know, taken from the app's Settings (PBX_* variables)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ..announcements.store import MAX_BYTES
from ..sounds import CUSTOM_DIR

# sounds/<lang>/*.wav: in a source checkout next to the package; an installed wheel carries
# them as data files under its prefix (pyproject's data-files).
REPO_SOUNDS = Path(__file__).resolve().parents[2] / "sounds"
INSTALLED_SOUNDS = Path(sys.prefix) / "share" / "pbx_app" / "sounds"
STANDARD_SOUNDS = REPO_SOUNDS if REPO_SOUNDS.is_dir() else INSTALLED_SOUNDS


@dataclass(frozen=True)
class WebConfig:
    policy_path: Path
    users_path: Path = Path("var/users.json")
    audit_path: Path = Path("var/audit.jsonl")
    # Where this process writes announcements; Asterisk reads the same files at CUSTOM_DIR.
    announcements_dir: Path = Path(CUSTOM_DIR)
    secure_cookies: bool = False  # set when the page is served over HTTPS (a reverse proxy)
    max_upload_bytes: int = MAX_BYTES
    standard_sounds: Path = STANDARD_SOUNDS  # sounds/<lang>/forward-notice.wav, to preview it

    @classmethod
    def from_settings(cls, settings) -> "WebConfig":
        return cls(
            policy_path=Path(settings.policy_path),
            users_path=Path(getattr(settings, "users_path", cls.users_path)),
            audit_path=Path(getattr(settings, "audit_path", cls.audit_path)),
            announcements_dir=Path(getattr(settings, "announcements_dir", cls.announcements_dir)),
            secure_cookies=bool(getattr(settings, "web_secure_cookies", False)),
        )
