"""Decoding an uploaded sound and converting it to Asterisk's native "wav": 8 kHz, mono,
16-bit signed PCM, so nothing is transcoded per call. sox does the decoding; a file it cannot
decode is refused with sox's own reason."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import wave
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SOX_TIMEOUT = 60.0
TARGET = ["-t", "wav", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"]


class AnnouncementError(ValueError):
    """A sound we refuse, with a message meant for the person who sent it, and how the page
    answers: 400 by default; 413 over the quota, 429 too many (with Retry-After), 503 busy."""

    def __init__(self, message: str, status: int = 400, code: str = "bad_sound", retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


def sniff_format(head: bytes) -> str | None:
    """'wav', 'ogg' or 'mp3' from the first bytes of a file; None for anything else. The
    file's name is not trusted: its content decides how it is decoded."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def _reason(stderr: bytes) -> str:
    """sox's reason without the paths of our temporary files."""
    lines = [l for l in stderr.decode(errors="replace").splitlines() if "FAIL" in l] or ["sox could not read it"]
    reason = re.sub(r"`[^']*':\s*", "", lines[-1])
    return re.sub(r"^sox FAIL \w+:\s*", "", reason).strip()


async def _sox(*args: str, what: str) -> bytes:
    """Runs sox; its stdout, or AnnouncementError with sox's reason."""
    proc = await asyncio.create_subprocess_exec(
        "sox", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), SOX_TIMEOUT)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AnnouncementError(f"{what} took longer than {SOX_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        raise AnnouncementError(f"the file could not be decoded as {what.rsplit(' ', 1)[-1]}: {_reason(stderr)}")
    return stdout


async def probe_seconds(src: Path, fmt: str) -> float:
    """The duration the file's header declares, read without decoding it (``sox --i``); 0.0
    when the format does not say. ``src`` must end in ``.fmt``: sox picks the reader by it."""
    out = await _sox("--i", "-D", str(src), what=f"reading the {fmt.upper()}")
    try:
        return max(0.0, float(out.decode().strip() or 0))
    except ValueError:
        return 0.0


async def convert_to_asterisk_wav(src: Path, fmt: str, dst: Path, max_seconds: float | None = None) -> None:
    """Decodes ``src`` (of format ``fmt``) and writes ``dst`` in Asterisk's wav format. With
    ``max_seconds`` the output stops there (``trim``), so its size is bounded whatever the
    input claims: the caller then refuses a sound that reached the bound."""
    limit = ["trim", "0", f"{max_seconds:.3f}"] if max_seconds else []
    await _sox("-V1", "-t", fmt, str(src), *TARGET, str(dst), *limit, what=f"decoding the {fmt.upper()}")


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


def made_seconds(path: Path) -> float:
    """The length of a sound we just made; one sox or espeak-ng left unreadable is refused."""
    try:
        return wav_seconds(path)
    except (wave.Error, EOFError, OSError) as exc:
        raise AnnouncementError(f"the converted sound is not readable ({exc})") from None


@contextmanager
def partial_in(folder: Path) -> Iterator[Path]:
    """A hidden file in ``folder`` to make a sound in, gone afterwards unless put in place
    (``put_in_place``): Asterisk never plays half a file, a failure leaves nothing behind."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".partial-{secrets.token_hex(8)}.wav"
    try:
        yield partial
    finally:
        partial.unlink(missing_ok=True)


def put_in_place(partial: Path, final: Path) -> None:
    os.chmod(partial, 0o644)  # Asterisk may run as another user
    os.replace(partial, final)
