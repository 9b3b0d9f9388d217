"""Issue 6: uploads and text-to-speech through the API, and choosing the result as what the
caller hears before a forward."""

from __future__ import annotations

import io
import re

import aiohttp
import pytest

from pbx_app.sounds import CUSTOM_DIR, announcement_sound
from tests.unit.test_announcements import sounds_in, tone
from tests.unit.test_web_api import WebBed, announcements_env, forward  # noqa: F401 (a fixture)


@pytest.fixture
async def bed(tmp_path):
    b = WebBed(tmp_path, max_upload_bytes=200_000)
    yield b
    await b.close()


def form(data: bytes, filename: str = "hello.wav") -> aiohttp.FormData:
    f = aiohttp.FormData()
    f.add_field("file", io.BytesIO(data), filename=filename, content_type="audio/wav")
    return f


async def test_upload_then_forward_with_it(bed, tmp_path):
    anna = await bed.login("anna")
    response = await anna.post("/api/announcements", data=form(tone(tmp_path / "in.wav", seconds=1).read_bytes()))
    assert response.status == 200, await response.text()
    uploaded = await response.json()
    assert re.fullmatch(r"upload-\d{8}-[0-9a-f]{12}\.wav", uploaded["file"])
    assert (bed.sounds / uploaded["file"]).is_file()
    played = await anna.get(uploaded["url"])
    assert played.status == 200 and played.headers["Content-Type"] == "audio/wav"
    assert (await played.read())[:4] == b"RIFF", "the page can play it back"

    saved = await anna.save("103", forward("101", announcement={"kind": "custom", "file": uploaded["file"]}))
    assert saved.status == 200, await saved.text()
    assert f"announcement: {{file: {uploaded['file']}}}" in bed.text
    announcement = bed.policy().employee("103").on_no_answer.announcement
    assert announcement_sound(announcement) == f"sound:{CUSTOM_DIR}/{uploaded['file'][:-4]}"
    [entry] = bed.audit("announcement_upload")
    assert (entry["user"], entry["file"], entry["sent_as"]) == ("anna", uploaded["file"], "hello.wav")


async def test_a_corrupt_upload_is_refused_with_a_clear_message(bed):
    anna = await bed.login("anna")
    response = await anna.post("/api/announcements", data=form(b"RIFF\x00\x10\x00\x00WAVE" + b"x" * 4000))
    assert response.status == 400
    body = await response.json()
    assert body["error"].startswith("the file could not be decoded as WAV:"), body
    assert not bed.sounds.exists() or not sounds_in(bed.sounds)


async def test_an_oversized_upload_is_refused_with_a_clear_message(bed, tmp_path):
    anna = await bed.login("anna")
    big = tone(tmp_path / "big.wav", seconds=3)  # 44.1 kHz stereo 16-bit: about 530 kB
    response = await anna.post("/api/announcements", data=form(big.read_bytes()))
    assert response.status == 413
    assert (await response.json())["error"] == "the file is too large: the limit is 0.2 MiB"
    assert not bed.sounds.exists() or not sounds_in(bed.sounds)


async def test_an_uploaded_name_never_becomes_a_path(bed, tmp_path):
    anna = await bed.login("anna")
    data = tone(tmp_path / "in.wav", seconds=0.5).read_bytes()
    response = await anna.post("/api/announcements", data=form(data, filename="../../../../tmp/evil.wav"))
    assert response.status == 200
    assert sounds_in(bed.sounds) == [(await response.json())["file"]]
    assert not (tmp_path / "evil.wav").exists()
    for name in ("..%2Fpolicy.yaml", "%2E%2E%2Fusers.json", "policy.yaml"):
        assert (await anna.get(f"/api/announcements/{name}")).status == 404


async def test_text_to_speech_through_the_api(bed):
    anna = await bed.login("anna")
    response = await anna.post("/api/announcements/tts", json={"text": "  Менеджер   занят. ", "language": "ru"})
    assert response.status == 200, await response.text()
    made = await response.json()
    assert made["text"] == "Менеджер занят." and made["seconds"] > 0.5
    saved = await anna.save("103", forward("sales", announcement={"kind": "tts", "file": made["file"], "text": made["text"]}))
    assert saved.status == 200
    view = await saved.json()
    assert view["setting"]["announcement"] == {"kind": "tts", "file": made["file"], "text": "Менеджер занят."}
    assert view["summary"].endswith("message made from text")
    refused = await anna.post("/api/announcements/tts", json={"text": "", "language": "en"})
    assert refused.status == 400 and (await refused.json())["error"] == "the text is empty"


async def test_the_standard_message_can_be_previewed(bed):
    anna = await bed.login("anna")
    response = await anna.get("/api/sounds/standard/en")
    assert response.status == 200 and (await response.read())[:4] == b"RIFF"
    assert (await anna.get("/api/sounds/standard/..")).status == 404
