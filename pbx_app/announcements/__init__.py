"""Custom announcements: uploads and text-to-speech, converted to what Asterisk plays and kept
under generated names in the announcements folder (PBX_ANNOUNCEMENTS_DIR)."""

from .convert import AnnouncementError, sniff_format
from .store import AnnouncementStore, Stored
from .tts import LANGUAGES, EspeakNg, TextToSpeech

__all__ = ["AnnouncementError", "AnnouncementStore", "EspeakNg", "LANGUAGES", "Stored", "TextToSpeech", "sniff_format"]
