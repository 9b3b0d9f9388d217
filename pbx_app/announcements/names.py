"""Employees' spoken names: what a mobile's confirm prompt ("A call for Ivan Petrov from …") and
a colleague's whisper ("Forwarded call for Ivan Petrov") say instead of the extension's digits.

One file per employee, ``names/<extension>.wav`` in the announcements folder; Asterisk plays it
as /var/lib/pbx_app/sounds/names/<extension> (NAMES_DIR), and the dialplan says the digits when
there is none (pbx-external-whose, dialplan/pbx_external.conf), so a missing name never breaks a
call. A name is either recorded (uploaded from the page) or made by text-to-speech from the
policy's ``name``; a made one keeps the text it was made from beside it (``<extension>.said``),
so making names again redoes only those whose ``name`` changed and never replaces a recording.

Names are made when someone asks: ``pbx-app names`` for the whole policy (a site of 10,000
employees runs it once, then after imports; it skips every name that is up to date), the page
when an employee saves a mobile setting or asks for it. Never on every save of the policy."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..policy.model import CUSTOM_DIR, Employee, is_outside
from .convert import (AnnouncementError, convert_to_asterisk_wav, made_seconds, partial_in, probe_seconds,
                      put_in_place, sniff_format)
from .tts import MAX_TEXT, EspeakNg, TextToSpeech

FOLDER = "names"
NAMES_DIR = f"{CUSTOM_DIR}/{FOLDER}"  # as Asterisk sees it; the dialplan has the same path
MAX_SECONDS = 5.0  # a name, not a message: it is said while a client waits
MAX_BYTES = 2 * 1024 * 1024
# The extension is the file's name: only what the dialplan keeps of it (FILTER(0-9a-zA-Z_-)).
EXTENSION_RE = re.compile(r"^[0-9A-Za-z_-]{1,40}$")
_CYRILLIC = re.compile("[\u0400-\u04ff]")


@dataclass(frozen=True)
class SpokenName:
    extension: str
    kind: str  # "recorded" | "made" | "" (none: the digits are said)
    said: str = ""  # made: the text it was made from


@dataclass
class Made:
    """What ``make_missing`` did."""
    made: list[str]
    kept: int
    failed: dict[str, str]


def language_of(text: str, preferred: str | None = None) -> str:
    """The voice for ``text``: the employee's language when it is one we speak, else Russian for
    Cyrillic, else English."""
    if preferred in ("en", "ru"):
        return preferred
    return "ru" if _CYRILLIC.search(text) else "en"


def says_name(employee: Employee) -> bool:
    """Whether someone answering one of ``employee``'s calls hears whose it is: their mobile rings
    (confirm), or a forward of theirs goes outside with a confirm or to a colleague with a whisper."""
    if employee.ring_mobile is not None and employee.ring_mobile.confirm:
        return True
    actions = [employee.on_no_answer, employee.on_busy, employee.on_unreachable, employee.on_absent]
    while actions:
        action = actions.pop()
        if action is None:
            continue
        if action.whisper or (action.kind == "forward" and action.target and is_outside(action.target) and action.confirm):
            return True
        actions.append(action.then)
    return False


class SpokenNames:
    def __init__(self, announcements: str | Path, tts: TextToSpeech | None = None):
        self.folder = Path(announcements) / FOLDER
        self.tts = tts or EspeakNg()

    def _file(self, extension: str, suffix: str) -> Path:
        if not isinstance(extension, str) or not EXTENSION_RE.match(extension):
            raise AnnouncementError(f"extension {str(extension)[:40]!r} cannot name a sound file")
        return self.folder / f"{extension}{suffix}"

    def path(self, extension: str) -> Path | None:
        """The name's file, or None when there is none (or the extension cannot have one)."""
        try:
            path = self._file(extension, ".wav")
        except AnnouncementError:
            return None
        return path if path.is_file() else None

    def get(self, extension: str) -> SpokenName:
        if self.path(extension) is None:
            return SpokenName(extension, "")
        said = self._file(extension, ".said")
        if said.is_file():
            return SpokenName(extension, "made", said.read_text(encoding="utf-8", errors="replace"))
        return SpokenName(extension, "recorded")

    async def make(self, extension: str, name: str, language: str | None = None) -> SpokenName:
        """The name said by text-to-speech; replaces what is there, a recording too."""
        text = " ".join((name or "").split())
        if not text:
            raise AnnouncementError("the name is empty: nothing to say")
        if len(text) > MAX_TEXT:
            raise AnnouncementError(f"the name is too long: {len(text)} characters, the limit is {MAX_TEXT}")
        with tempfile.TemporaryDirectory(prefix="pbx-name-") as tmp:
            spoken = Path(tmp) / "spoken.wav"
            await self.tts.render(text, language_of(text, language), spoken)
            await self._publish(extension, lambda out: convert_to_asterisk_wav(spoken, "wav", out, MAX_SECONDS + 0.5))
        self._file(extension, ".said").write_text(text, encoding="utf-8")
        return SpokenName(extension, "made", text)

    async def record(self, extension: str, upload: Path) -> SpokenName:
        """An uploaded recording (WAV, MP3 or OGG, by its content) as the name."""
        size = upload.stat().st_size
        if size == 0:
            raise AnnouncementError("the file is empty")
        if size > MAX_BYTES:
            raise AnnouncementError(f"the file is too large: the limit for a name is {MAX_BYTES // 1024 // 1024} MiB", 413,
                                    "too_large")
        with open(upload, "rb") as f:
            fmt = sniff_format(f.read(16))
        if fmt is None:
            raise AnnouncementError("not a WAV, MP3 or OGG file (its content says otherwise, whatever its name)")
        named = upload.with_name(f"{upload.name}.{fmt}")
        os.link(upload, named)
        try:
            declared = await probe_seconds(named, fmt)
            if declared > MAX_SECONDS + 0.5:
                raise AnnouncementError(f"a name is said in at most {MAX_SECONDS:.0f} s; this one is {declared:.0f} s")
            await self._publish(extension, lambda out: convert_to_asterisk_wav(named, fmt, out, MAX_SECONDS + 0.5))
        finally:
            named.unlink(missing_ok=True)
        self._file(extension, ".said").unlink(missing_ok=True)
        return SpokenName(extension, "recorded")

    def remove(self, extension: str) -> None:
        """No name any more: the digits are said."""
        self._file(extension, ".wav").unlink(missing_ok=True)
        self._file(extension, ".said").unlink(missing_ok=True)

    async def make_missing(self, employees: Iterable, at_once: int = 2) -> Made:
        """Makes the name of each employee (extension, name, language) that has none or whose made
        name says an older ``name``; recordings are kept. ``at_once`` text-to-speech runs at a time."""
        result = Made([], 0, {})
        todo = []
        for e in employees:
            if not e.name or not EXTENSION_RE.match(e.extension):
                continue
            now = self.get(e.extension)
            if now.kind == "recorded" or (now.kind == "made" and now.said == " ".join(e.name.split())):
                result.kept += 1
            else:
                todo.append(e)
        slots = asyncio.Semaphore(at_once)

        async def one(e) -> None:
            async with slots:
                try:
                    await self.make(e.extension, e.name, e.language)
                    result.made.append(e.extension)
                except AnnouncementError as exc:
                    result.failed[e.extension] = str(exc)

        await asyncio.gather(*(one(e) for e in todo))
        return result

    async def _publish(self, extension: str, make) -> None:
        """Writes the name under a hidden name, checks it, then renames it into place: Asterisk
        never plays half a file."""
        with partial_in(self.folder) as partial:
            await make(partial)
            seconds = made_seconds(partial)
            if seconds < 0.2:
                raise AnnouncementError(f"the sound is too short ({seconds:.1f} s): nothing anyone could hear")
            if seconds > MAX_SECONDS:
                raise AnnouncementError(f"a name is said in at most {MAX_SECONDS:.0f} s; this one is {seconds:.1f} s")
            put_in_place(partial, self._file(extension, ".wav"))
