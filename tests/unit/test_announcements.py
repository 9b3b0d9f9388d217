"""Issue 6: custom announcements — decoded to prove they are sound, converted to Asterisk's
8 kHz mono 16-bit wav, stored under generated names inside the folder only."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import pytest

from pbx_app.announcements import AnnouncementError, AnnouncementStore, sniff_format
from pbx_app.announcements.index import INDEX_NAME
from pbx_app.announcements.store import NAME_RE
from pbx_app.policy.model import Announcement
from pbx_app.sounds import CUSTOM_DIR, announcement_sound


def tone(path: Path, seconds: float = 1.0, rate: int = 44100, channels: int = 2) -> Path:
    """A real sound file made with sox; the format follows the file's extension."""
    subprocess.run(["sox", "-n", "-r", str(rate), "-c", str(channels), "-b", "16", str(path), "synth", str(seconds), "sine", "440"],
                   check=True, capture_output=True)
    return path


def asterisk_format(path: Path) -> tuple[int, int, int, float]:
    with wave.open(str(path), "rb") as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes() / w.getframerate()


def sounds_in(folder: Path) -> list[str]:
    """What is in the folder but the page's own index of what it made."""
    return sorted(p.name for p in folder.iterdir() if p.name != INDEX_NAME)


@pytest.fixture
def store(tmp_path):
    return AnnouncementStore(tmp_path / "sounds", max_bytes=2 * 1024 * 1024)


@pytest.mark.parametrize("ext", ["wav", "mp3", "ogg"])
async def test_an_upload_is_converted_to_8khz_mono_16bit(store, tmp_path, ext):
    stored = await store.import_upload(tone(tmp_path / f"in.{ext}", seconds=1.5))
    assert NAME_RE.match(stored.name) and stored.name.startswith("upload-")
    rate, channels, width, seconds = asterisk_format(store.folder / stored.name)
    assert (rate, channels, width) == (8000, 1, 2)
    assert 1.4 <= seconds <= 1.6 and stored.seconds == pytest.approx(seconds, abs=0.01)
    assert sounds_in(store.folder) == [stored.name], "no temporary file left"


async def test_the_content_decides_the_format_not_the_name(store, tmp_path):
    mp3 = tone(tmp_path / "in.mp3")
    disguised = tmp_path / "in.wav"
    disguised.write_bytes(mp3.read_bytes())
    stored = await store.import_upload(disguised)
    assert asterisk_format(store.folder / stored.name)[0] == 8000


async def test_a_corrupt_wav_is_refused_with_the_decoders_reason(store, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x10\x00\x00WAVE" + b"junk" * 500)
    with pytest.raises(AnnouncementError) as caught:
        await store.import_upload(bad)
    message = str(caught.value)
    assert message.startswith("the file could not be decoded as WAV:"), message
    assert str(tmp_path) not in message, "no server paths in the message"
    assert not store.folder.exists() or not sounds_in(store.folder)


async def test_a_truncated_mp3_or_text_file_is_refused(store, tmp_path):
    text = tmp_path / "notes.mp3"
    text.write_text("this is not a sound\n" * 20)
    with pytest.raises(AnnouncementError, match="not a WAV, MP3 or OGG file"):
        await store.import_upload(text)
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(tone(tmp_path / "full.ogg").read_bytes()[:200])
    with pytest.raises(AnnouncementError, match="OGG"):
        await store.import_upload(cut)


async def test_too_large_too_long_and_empty_are_refused(tmp_path):
    small = AnnouncementStore(tmp_path / "a", max_bytes=10_000)
    with pytest.raises(AnnouncementError, match="too large"):
        await small.import_upload(tone(tmp_path / "big.wav", seconds=1))
    short = AnnouncementStore(tmp_path / "b", max_seconds=2)
    with pytest.raises(AnnouncementError, match="too long: 3 s, the limit is 2 s"):
        await short.import_upload(tone(tmp_path / "long.wav", seconds=3, rate=8000, channels=1))
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AnnouncementError, match="empty"):
        await short.import_upload(empty)


@pytest.mark.parametrize("language, text", [("en", "The manager is busy."), ("ru", "Менеджер занят, соединяем с коллегой.")])
async def test_text_to_speech_makes_an_announcement(store, language, text):
    stored = await store.from_text(text, language)
    assert stored.name.startswith("tts-")
    rate, channels, width, seconds = asterisk_format(store.folder / stored.name)
    assert (rate, channels, width) == (8000, 1, 2) and seconds > 1.0


async def test_text_to_speech_refuses_empty_long_or_unknown_language(store):
    with pytest.raises(AnnouncementError, match="empty"):
        await store.from_text("   ", "en")
    with pytest.raises(AnnouncementError, match="too long"):
        await store.from_text("a" * 501, "en")
    with pytest.raises(AnnouncementError, match="language 'de'"):
        await store.from_text("Hallo", "de")


async def test_text_that_looks_like_an_option_is_spoken_not_obeyed(store, tmp_path):
    stored = await store.from_text("--version -w /tmp/x.wav", "en")
    assert (store.folder / stored.name).exists()


async def test_only_files_inside_the_folder_can_be_named(store, tmp_path):
    stored = await store.import_upload(tone(tmp_path / "in.wav"))
    (tmp_path / "secret.wav").write_bytes(b"RIFF")
    assert store.path(stored.name) == store.folder / stored.name
    for name in ("../secret.wav", "/etc/passwd", "..", ".partial-1.wav", "a/b.wav", "x.txt", "", None):
        assert store.path(name) is None, name
    (store.folder / "link.wav").symlink_to(tmp_path / "secret.wav")
    assert store.path("link.wav") is None, "a link out of the folder is not followed"


def test_sniffing():
    assert sniff_format(b"RIFF\x24\x00\x00\x00WAVEfmt ") == "wav"
    assert sniff_format(b"OggS\x00\x02") == "ogg"
    assert sniff_format(b"ID3\x04\x00") == "mp3"
    assert sniff_format(b"\xff\xfb\x90\x00") == "mp3"
    assert sniff_format(b"<html>") is None


def test_the_policy_entry_plays_from_the_folder_asterisk_sees():
    sound = announcement_sound(Announcement(kind="custom", file="upload-20261129-0123456789ab.wav"))
    assert sound == f"sound:{CUSTOM_DIR}/upload-20261129-0123456789ab"
