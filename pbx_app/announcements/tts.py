"""Text-to-speech behind a small interface. espeak-ng (Debian's package) is the default: it is
small, offline and speaks Russian and English; a better engine only needs ``render``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from .convert import AnnouncementError

LANGUAGES = {"en": "English", "ru": "Русский"}
MAX_TEXT = 500
TTS_TIMEOUT = 60.0


class TextToSpeech(Protocol):
    async def render(self, text: str, language: str, out: Path) -> None:
        """Speaks ``text`` in ``language`` ('en' or 'ru') into the wav file ``out`` (any rate)."""


class EspeakNg:
    voices = {"en": "en-us", "ru": "ru"}

    def __init__(self, binary: str = "espeak-ng", words_per_minute: int = 150):
        self.binary = binary
        self.words_per_minute = words_per_minute

    async def render(self, text: str, language: str, out: Path) -> None:
        voice = self.voices.get(language)
        if voice is None:
            raise AnnouncementError(f"language '{language}' is not one of {', '.join(self.voices)}")
        try:
            # The text goes in on stdin, so nothing in it can be taken for an option.
            proc = await asyncio.create_subprocess_exec(
                self.binary, "-v", voice, "-s", str(self.words_per_minute), "-w", str(out), "--stdin",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            raise AnnouncementError(f"text-to-speech is not installed ({self.binary})") from None
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(text.encode()), TTS_TIMEOUT)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise AnnouncementError("text-to-speech took too long") from None
        if proc.returncode != 0 or not out.exists():
            raise AnnouncementError(f"text-to-speech failed: {stderr.decode(errors='replace').strip()}")
