"""The announcements folder. The app writes here (PBX_ANNOUNCEMENTS_DIR, seen from the app's
host) and Asterisk plays the same files as /var/lib/pbx_app/sounds/NAME (pbx_app.sounds).

Every file gets a name we generate, so no uploaded name ever becomes a path; a file appears
under its final name only once it is complete (converted to a hidden temporary name, then
renamed), so Asterisk never plays half a file."""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import wave
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .convert import AnnouncementError, convert_to_asterisk_wav, sniff_format, wav_seconds
from .tts import LANGUAGES, MAX_TEXT, EspeakNg, TextToSpeech

MAX_BYTES = 10 * 1024 * 1024
MAX_SECONDS = 300.0
MIN_SECONDS = 0.3
# Names the page may ask for: our generated ones and plain names a sysadmin may put there.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}\.wav$")


@dataclass(frozen=True)
class Stored:
    name: str  # the file name in the folder, e.g. upload-20261129-3f2a9c1b7d4e.wav
    seconds: float


class AnnouncementStore:
    def __init__(self, folder: str | Path, max_bytes: int = MAX_BYTES, max_seconds: float = MAX_SECONDS,
                 tts: TextToSpeech | None = None):
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.tts = tts or EspeakNg()

    def path(self, name: str) -> Path | None:
        """The file for ``name`` when it is a valid name of an existing file in the folder."""
        if not isinstance(name, str) or not NAME_RE.match(name):
            return None
        path = self.folder / name
        if path.resolve().parent != self.folder.resolve() or not path.is_file():
            return None
        return path

    async def import_upload(self, upload: Path) -> Stored:
        """Validates an uploaded file by decoding it and stores it converted. ``upload`` is a
        temporary file outside the folder; it is left for the caller to delete."""
        size = upload.stat().st_size
        if size == 0:
            raise AnnouncementError("the file is empty")
        if size > self.max_bytes:
            raise AnnouncementError(f"the file is too large: {_mib(size)}, the limit is {_mib(self.max_bytes)}")
        with open(upload, "rb") as f:
            fmt = sniff_format(f.read(16))
        if fmt is None:
            raise AnnouncementError("not a WAV, MP3 or OGG file (its content says otherwise, whatever its name)")
        return await self._publish("upload", lambda out: convert_to_asterisk_wav(upload, fmt, out))

    async def from_text(self, text: str, language: str) -> Stored:
        text = (text or "").strip()
        if not text:
            raise AnnouncementError("the text is empty")
        if len(text) > MAX_TEXT:
            raise AnnouncementError(f"the text is too long: {len(text)} characters, the limit is {MAX_TEXT}")
        if language not in LANGUAGES:
            raise AnnouncementError(f"language '{language}' is not one of {', '.join(LANGUAGES)}")
        with tempfile.TemporaryDirectory(prefix="pbx-tts-") as tmp:
            spoken = Path(tmp) / "spoken.wav"
            await self.tts.render(text, language, spoken)
            return await self._publish("tts", lambda out: convert_to_asterisk_wav(spoken, "wav", out))

    async def _publish(self, kind: str, make) -> Stored:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{kind}-{datetime.now(timezone.utc):%Y%m%d}-{secrets.token_hex(6)}.wav"
        partial = self.folder / f".partial-{secrets.token_hex(8)}.wav"
        try:
            await make(partial)
            try:
                seconds = wav_seconds(partial)
            except (wave.Error, EOFError, OSError) as exc:
                raise AnnouncementError(f"the converted sound is not readable ({exc})") from None
            if seconds < MIN_SECONDS:
                raise AnnouncementError(f"the sound is too short ({seconds:.1f} s): nothing a caller could hear")
            if seconds > self.max_seconds:
                raise AnnouncementError(f"the sound is too long: {seconds:.0f} s, the limit is {self.max_seconds:.0f} s")
            os.chmod(partial, 0o644)  # Asterisk may run as another user
            os.replace(partial, self.folder / name)
        finally:
            partial.unlink(missing_ok=True)
        return Stored(name, round(seconds, 2))


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"
