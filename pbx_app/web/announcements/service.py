"""The announcements feature's one way to the sounds: a recording or a text made into a sound
(announcements/store.py converts, bounds and keeps them) with its audit entry, and which sound a
user may play back."""

from __future__ import annotations

from pathlib import Path

from ...announcements.store import Stored
from ...users import User
from ..settings.policy_file import PolicyBroken
from ..state import Web

STANDARD = {"callback": "callback-offer.wav"}  # ?sound=: the standard callback offer
FORWARD_NOTICE = "forward-notice.wav"  # otherwise: the forward's notice


async def upload(web_: Web, user: User, address: str, upload: Path, size: int, sent_as: str) -> Stored:
    """AnnouncementError when the sound is refused."""
    stored = await web_.announcements.import_upload(upload, owner=user.name)
    await web_.record("announcement_upload", user.name, role=user.role, address=address,
                      file=stored.name, seconds=stored.seconds, bytes=size, sent_as=sent_as)
    return stored


async def from_text(web_: Web, user: User, address: str, said: str, language: str) -> Stored:
    """AnnouncementError when the text cannot be said."""
    stored = await web_.announcements.from_text(said, language, owner=user.name)
    await web_.record("announcement_tts", user.name, role=user.role, address=address,
                      file=stored.name, seconds=stored.seconds, language=language, text=said)
    return stored


async def playable(web_: Web, user: User, name: str) -> Path | None:
    """The sound's file when this user may play it: their own uploads, the one their setting
    uses, any for an administrator."""
    keep = None
    if not user.is_admin and user.extension:
        try:
            keep = (await web_.snapshot()).announcement_file(user.extension)
        except PolicyBroken:
            pass
    return web_.announcements.path(name) if web_.announcements.may_use(name, user, keep) else None


def standard(web_: Web, language: str, sound: str | None) -> Path | None:
    path = web_.config.standard_sounds / language / STANDARD.get(sound or "", FORWARD_NOTICE)
    return path if path.is_file() else None
