"""The recording of the message a caller left during one call, as app_voicemail keeps it:
<PBX_VOICEMAIL_DIR>/<context>/<box>/<folder>/msgNNNN.{txt,wav}. The .txt names the caller's
channel (callerchan) and when the message began (origtime); the journal has the call's channel
name and times, so the pair identifies the message even after the owner moved it to Old or
Asterisk renumbered the files."""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

FOLDERS = ("INBOX", "Old", "Urgent", "Work", "Family", "Friends")
MAX_MESSAGES = 1000  # per folder; maxmsg is 100 in config/asterisk/voicemail.conf
SLACK = 5.0  # seconds around the call: origtime is whole seconds


@dataclass(frozen=True)
class Message:
    wav: Path
    size: int
    duration: int | None  # seconds, as app_voicemail measured it


def find_message(root: Path, mailbox: str, channel_name: str, started_at: datetime, ended_at: datetime | None) -> Message | None:
    """The message left during the call, or None (not found, deleted, or no WAV). Blocking: run
    it off the event loop."""
    box, _, context = mailbox.partition("@")
    if not box or "/" in box or "/" in context or box.startswith(".") or context.startswith("."):
        return None  # a mailbox name never leads out of the voicemail folder
    home = root / (context or "default") / box
    start = started_at.timestamp() - SLACK
    end = (ended_at.timestamp() if ended_at else start + 3600) + SLACK
    for folder in FOLDERS:
        for info in sorted((home / folder).glob("msg*.txt"))[:MAX_MESSAGES]:
            fields = _read(info)
            if fields is None or fields.get("callerchan") != channel_name:
                continue
            try:
                when = float(fields.get("origtime", ""))
            except ValueError:
                continue
            wav = info.with_suffix(".wav")
            if start <= when <= end and wav.is_file():
                duration = fields.get("duration", "")
                return Message(wav, wav.stat().st_size, int(duration) if duration.isdigit() else None)
    return None


def _read(info: Path) -> dict[str, str] | None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(info.read_text(encoding="utf-8", errors="replace")[:8192])
    except (OSError, configparser.Error):
        return None
    return dict(parser["message"]) if parser.has_section("message") else None
