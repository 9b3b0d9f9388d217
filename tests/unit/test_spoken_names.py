"""Employees' spoken names (pbx_app/announcements/names.py): made from the policy's name, or
recorded; made again only when the name changed; a recording is never replaced by a bulk run."""

import wave
from dataclasses import dataclass
from pathlib import Path

import pytest

from pbx_app.announcements.convert import AnnouncementError
from pbx_app.announcements.names import SpokenNames, language_of, says_name
from pbx_app.cli import main
from pbx_app.policy import parse_policy


class FakeSpeech:
    """Writes a second of silence per call and remembers what it was asked to say."""

    def __init__(self):
        self.said: list[tuple[str, str]] = []

    async def render(self, text: str, language: str, out: Path) -> None:
        self.said.append((text, language))
        write_wav(out, seconds=1.0)


def write_wav(path: Path, seconds: float, rate: int = 16000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(rate * seconds))


@dataclass
class E:
    extension: str
    name: str
    language: str | None = None


async def test_a_made_name_is_an_asterisk_wav_and_is_made_again_only_when_the_name_changes(tmp_path):
    speech = FakeSpeech()
    names = SpokenNames(tmp_path, speech)
    assert names.get("101").kind == "" and names.path("101") is None
    done = await names.make_missing([E("101", "Ivan Petrov"), E("102", "Пётр Иванов"), E("103", "")])
    assert sorted(done.made) == ["101", "102"] and done.kept == 0 and not done.failed
    assert sorted(speech.said) == [("Ivan Petrov", "en"), ("Пётр Иванов", "ru")], "no name, nothing to say: digits"
    with wave.open(str(names.path("101"))) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
    assert names.get("101").said == "Ivan Petrov"
    again = await names.make_missing([E("101", "Ivan  Petrov"), E("102", "Пётр Сидоров")])
    assert (again.made, again.kept) == (["102"], 1)


async def test_a_recording_is_kept_by_a_bulk_run_and_a_bad_one_is_refused(tmp_path):
    speech = FakeSpeech()
    names = SpokenNames(tmp_path, speech)
    upload = tmp_path / "upload"
    write_wav(upload, seconds=1.5, rate=44100)
    assert (await names.record("101", upload)).kind == "recorded"
    done = await names.make_missing([E("101", "Ivan Petrov")])
    assert (done.made, done.kept, speech.said) == ([], 1, [])
    long = tmp_path / "long"
    write_wav(long, seconds=12)
    with pytest.raises(AnnouncementError, match="at most 5 s"):
        await names.record("101", long)
    (tmp_path / "text").write_text("not a sound")
    with pytest.raises(AnnouncementError, match="not a WAV"):
        await names.record("101", tmp_path / "text")
    assert names.get("101").kind == "recorded", "a refused upload leaves the name as it was"
    with pytest.raises(AnnouncementError, match="cannot name a sound file"):
        await names.make("../101", "x")
    names.remove("101")
    assert names.path("101") is None


def test_the_voice_follows_the_employees_language_else_the_script():
    assert language_of("Ivan", "ru") == "ru"
    assert language_of("Иван") == "ru" and language_of("Ivan") == "en" and language_of("Иван", "de") == "ru"


def test_pbx_app_names_makes_the_missing_ones_and_says_what_it_did(tmp_path, monkeypatch, capsys):
    policy = tmp_path / "policy.yaml"
    policy.write_text('employees:\n  "101": {name: Ivan Petrov}\n  "102": {name: Пётр}\n')
    monkeypatch.setenv("PBX_ANNOUNCEMENTS_DIR", str(tmp_path / "sounds"))
    assert main(["names", "--policy", str(policy)]) == 0
    assert "2 name(s) made, 0 up to date or recorded, 0 failed" in capsys.readouterr().out
    assert SpokenNames(tmp_path / "sounds").get("102").said == "Пётр"
    assert main(["names", "--policy", str(policy), "101", "999"]) == 1
    out, err = capsys.readouterr()
    assert "0 name(s) made, 1 up to date or recorded" in out and "no employee 999" in err


def test_a_name_is_needed_where_someone_answering_hears_whose_call_it_is():
    policy = parse_policy("""site:
  callback_route: "PJSIP/{number}@carrier"
  outbound: {allow: [_79XXXXXXXXX], trunk: {endpoint: carrier}}
employees:
  "101": {name: A, mobile: "+79001234567", ring_mobile: true}
  "102": {name: B, on_no_answer: {action: forward, to: "103", whisper: true}}
  "103": {name: C, on_busy: {action: forward, to: "+79001112233"}}
  "104": {name: D, on_no_answer: {action: forward, to: "+79001112233", confirm: false}}
  "105": {name: E, on_no_answer: {action: callback, then: {action: forward, to: "102", whisper: true}}}
  "106": {name: F, on_no_answer: {action: forward, to: "102"}}
""")
    assert [e for e in policy.employees if says_name(policy.employees[e])] == ["101", "102", "103", "105"]
