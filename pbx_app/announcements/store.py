"""The announcements folder. The app writes here (PBX_ANNOUNCEMENTS_DIR, seen from the app's
host) and Asterisk plays the same files as /var/lib/pbx_app/sounds/NAME (pbx_app.sounds).

Every file gets a name we generate, so no uploaded name ever becomes a path; a file appears
under its final name only once it is complete (converted to a hidden temporary name, then
renamed), so Asterisk never plays half a file.

What one person can make is bounded: the declared duration is read before anything is decoded
and the conversion stops at the length limit (``trim``), so a small file claiming hours writes
nothing; a few conversions run at a time; each owner has a quota of bytes and of sounds per
hour. Sounds the page made that the policy no longer refers to are removed after a grace
period (``collect``); files a sysadmin put there are never touched."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .convert import (AnnouncementError, convert_to_asterisk_wav, made_seconds, partial_in, probe_seconds,
                      put_in_place, sniff_format)
from .index import Made, UploadIndex
from .tts import LANGUAGES, MAX_TEXT, EspeakNg, TextToSpeech

MAX_BYTES = 10 * 1024 * 1024
MAX_SECONDS = 300.0
MIN_SECONDS = 0.3
QUOTA_BYTES = 20 * 1024 * 1024
PER_HOUR = 20
CONVERSIONS = 2
QUEUED_PER_SLOT = 4  # conversions waiting for a slot, per slot, before "busy, try again"
UNUSED_SECONDS = 24 * 3600.0
# Names the page may ask for: our generated ones and plain names a sysadmin may put there.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}\.wav$")


@dataclass(frozen=True)
class Stored:
    name: str  # the file name in the folder, e.g. upload-20261129-3f2a9c1b7d4e.wav
    seconds: float


class AnnouncementStore:
    def __init__(self, folder: str | Path, max_bytes: int = MAX_BYTES, max_seconds: float = MAX_SECONDS,
                 tts: TextToSpeech | None = None, *, conversions: int = CONVERSIONS, quota_bytes: int = QUOTA_BYTES,
                 per_hour: int = PER_HOUR, unused_seconds: float = UNUSED_SECONDS,
                 clock: Callable[[], float] = time.time):
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.tts = tts or EspeakNg()
        self.conversions = conversions
        self.quota_bytes = quota_bytes
        self.per_hour = per_hour
        self.unused_seconds = unused_seconds
        self.clock = clock
        self.index = UploadIndex(self.folder)
        self._slots = asyncio.Semaphore(conversions)
        self._queued = 0
        self._attempts: dict[str, deque[float]] = {}
        self._index_lock = asyncio.Lock()

    def path(self, name: str) -> Path | None:
        """The file for ``name`` when it is a valid name of an existing file in the folder."""
        if not isinstance(name, str) or not NAME_RE.match(name):
            return None
        path = self.folder / name
        if path.resolve().parent != self.folder.resolve() or not path.is_file():
            return None
        return path

    def owner(self, name: str) -> str | None:
        """Who made ``name`` through the page; None for a sysadmin's file."""
        return self.index.owner(name)

    def may_use(self, name: str, user, keep: str | None = None) -> bool:
        """An administrator may play and choose any sound in the folder; an employee only the
        ones they made, and ``keep`` (the one their setting has now, whoever chose it)."""
        if self.path(name) is None:
            return False
        return user.is_admin or name == keep or self.owner(name) == user.name

    async def import_upload(self, upload: Path, owner: str = "") -> Stored:
        """Validates an uploaded file by decoding it and stores it converted. ``upload`` is a
        temporary file outside the folder; it is left for the caller to delete."""
        size = upload.stat().st_size
        if size == 0:
            raise AnnouncementError("the file is empty")
        if size > self.max_bytes:
            raise AnnouncementError(f"the file is too large: {_mib(size)}, the limit is {_mib(self.max_bytes)}", 413, "too_large")
        with open(upload, "rb") as f:
            fmt = sniff_format(f.read(16))
        if fmt is None:
            raise AnnouncementError("not a WAV, MP3 or OGG file (its content says otherwise, whatever its name)")
        self._admit(owner)
        async with self._slot():
            # sox picks its reader by the name: give the content's own format, never the sender's.
            named = upload.with_name(f"{upload.name}.{fmt}")
            os.link(upload, named)
            try:
                declared = await probe_seconds(named, fmt)
                if declared > self.max_seconds:
                    raise AnnouncementError(f"the sound is too long: {declared:.0f} s, the limit is {self.max_seconds:.0f} s")
                return await self._publish("upload", owner, lambda out: convert_to_asterisk_wav(named, fmt, out, self._bound))
            finally:
                named.unlink(missing_ok=True)

    async def from_text(self, text: str, language: str, owner: str = "") -> Stored:
        text = (text or "").strip()
        if not text:
            raise AnnouncementError("the text is empty")
        if len(text) > MAX_TEXT:
            raise AnnouncementError(f"the text is too long: {len(text)} characters, the limit is {MAX_TEXT}")
        if language not in LANGUAGES:
            raise AnnouncementError(f"language '{str(language)[:20]}' is not one of {', '.join(LANGUAGES)}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise AnnouncementError("the text has characters that cannot be spoken (broken Unicode)") from None
        self._admit(owner)
        async with self._slot():
            with tempfile.TemporaryDirectory(prefix="pbx-tts-") as tmp:
                spoken = Path(tmp) / "spoken.wav"
                await self.tts.render(text, language, spoken)
                return await self._publish("tts", owner, lambda out: convert_to_asterisk_wav(spoken, "wav", out, self._bound))

    @property
    def _bound(self) -> float:
        return self.max_seconds + 0.5  # a sound reaching this is refused as too long

    def _admit(self, owner: str) -> None:
        """Counts one sound for ``owner`` before any work starts; refuses over the hourly rate
        or the quota, with a message saying which and until when."""
        now = self.clock()
        made = self._attempts.setdefault(owner, deque())
        while made and made[0] <= now - 3600:
            made.popleft()
        if len(made) >= self.per_hour:
            wait = made[0] + 3600 - now
            raise AnnouncementError(
                f"you made {len(made)} sounds in the last hour, the limit is {self.per_hour}: "
                f"try again in {max(1, round(wait / 60))} min", 429, "too_many", retry_after=wait)
        used = self.index.used_by(owner)
        if used >= self.quota_bytes:
            raise AnnouncementError(
                f"your sounds take {_mib(used)}, the limit is {_mib(self.quota_bytes)}; sounds no setting uses are "
                f"removed {self.unused_seconds / 3600:g} h after they were last used", 413, "quota")
        made.append(now)

    def _slot(self):
        """A conversion slot; when too many wait already, 503 busy rather than a long queue."""
        if self._queued >= self.conversions * QUEUED_PER_SLOT:
            raise AnnouncementError("the server is converting other sounds: try again in a few seconds", 503, "busy",
                                    retry_after=5)
        return _Slot(self)

    async def _publish(self, kind: str, owner: str, make) -> Stored:
        name = f"{kind}-{datetime.now(timezone.utc):%Y%m%d}-{secrets.token_hex(6)}.wav"
        with partial_in(self.folder) as partial:
            await make(partial)
            seconds = made_seconds(partial)
            if seconds < MIN_SECONDS:
                raise AnnouncementError(f"the sound is too short ({seconds:.1f} s): nothing a caller could hear")
            if seconds > self.max_seconds:
                raise AnnouncementError(f"the sound is too long: {seconds:.0f} s, the limit is {self.max_seconds:.0f} s")
            size = partial.stat().st_size
            used = self.index.used_by(owner)
            if used + size > self.quota_bytes:
                raise AnnouncementError(
                    f"this sound ({_mib(size)}) would take your sounds past the limit of {_mib(self.quota_bytes)} "
                    f"(in use: {_mib(used)})", 413, "quota")
            put_in_place(partial, self.folder / name)
        self.index.files[name] = Made(owner, size, self.clock(), 0.0)
        await self._save_index()
        return Stored(name, round(seconds, 2))

    def referenced(self, text: str) -> None:
        """Notes that ``text`` (a policy) refers to these sounds now: their grace starts again."""
        now = self.clock()
        for name, made in self.index.files.items():
            if name[:-4] in text:
                made.seen = now

    async def collect(self, policy_text: str) -> list[str]:
        """Removes the sounds the page made that ``policy_text`` does not mention and that
        nothing has used for ``unused_seconds``; returns their names. A mention anywhere in the
        text (a comment too) keeps a file: better kept than removed in use."""
        self.referenced(policy_text)
        now = self.clock()
        removed = []
        for name, made in list(self.index.files.items()):
            gone = not (self.folder / name).is_file()
            if gone or now - max(made.made, made.seen) > self.unused_seconds:
                (self.folder / name).unlink(missing_ok=True)
                del self.index.files[name]
                if not gone:
                    removed.append(name)
        if removed:
            await self._save_index()
        return removed

    async def _save_index(self) -> None:
        async with self._index_lock:  # the latest state is written last
            await asyncio.to_thread(self.index.write, self.index.snapshot())


class _Slot:
    def __init__(self, store: AnnouncementStore):
        self.store = store

    async def __aenter__(self) -> None:
        self.store._queued += 1
        try:
            await self.store._slots.acquire()
        finally:
            self.store._queued -= 1

    async def __aexit__(self, *exc) -> None:
        self.store._slots.release()


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"
