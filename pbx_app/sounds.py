"""Names of the sounds we play. Asterisk picks the language folder from the caller channel's
language, so one name serves Russian and English callers."""

from __future__ import annotations

from .policy.model import CUSTOM_DIR, Announcement

# sounds/<lang>/<name>.wav in the repository, installed under Asterisk's sounds/<lang>/pbx_app/.
DROP_MESSAGE = "sound:pbx_app/manager-unavailable"
FORWARD_NOTICE = "sound:pbx_app/forward-notice"
# Callbacks: the offer to the client (the dialplan plays the rest, pbx-callback).
CALLBACK_OFFER = "sound:pbx_app/callback-offer"


def announcement_sound(announcement: Announcement, standard: str = FORWARD_NOTICE) -> str | None:
    """The media URI to play before a forward (or of a callback offer: ``standard``), or None
    for no announcement."""
    if announcement.kind == "none":
        return None
    if announcement.kind == "custom" and announcement.file:
        name = announcement.file.rsplit(".", 1)[0]
        return f"sound:{name}" if name.startswith("/") else f"sound:{CUSTOM_DIR}/{name}"
    return standard


def playback_name(sound: str) -> str:
    """Playback() takes a file name where ARI takes a media URI (sound:NAME)."""
    return sound.removeprefix("sound:")
