"""Issue 24 on real calls: whoever answers a forwarded call hears the employee's spoken name
("A call for Ivan Petrov from 5 5 5", "Forwarded call for Ivan Petrov"), made by the project's
text-to-speech (pbx_app/announcements/names.py) where Asterisk reads it; with no name, the
extension's digits. What each channel heard is read from Asterisk's log (messages.log keeps
file.c's "Playing '…'" lines), from where the log stood before the call."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx_app.announcements.names import SpokenNames
from pbx_app.history.events import LegEnded

from .conftest import asterisk_root
from .test_agi_calls import AGI_CALLER_IP, agi_app  # noqa: F401 (a fixture)
from .test_history_calls import ended_call, journaled_app  # noqa: F401 (a fixture)
from .test_mobile_forward import CLIENT, confirm_timeout, mobile  # noqa: F401 (a fixture)

NAME = "/var/lib/pbx_app/sounds/names/101"


def log() -> Path:
    return asterisk_root() / "var/log/asterisk/messages.log"


def played(since: int, channel: str) -> list[str]:
    """The sounds channels whose name starts with ``channel`` began to play after byte ``since``."""
    with open(log(), "rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
    out = []
    for line in text.splitlines():
        if f"<{channel}" in line and "Playing '" in line:
            out.append(line.split("Playing '", 1)[1].split("'", 1)[0].rsplit(".", 1)[0])
    return out


@pytest.fixture
def spoken_name():
    """make(extension, name): the employee's name made by text-to-speech in the test bed's
    announcements folder; removed afterwards (the digits are said again)."""
    names = SpokenNames(asterisk_root() / "var/lib/pbx_app/sounds")
    made: list[str] = []

    async def make(extension: str, name: str) -> None:
        await names.make(extension, name)
        made.append(extension)

    yield make
    for extension in made:
        names.remove(extension)


def policy(whisper: bool) -> str:
    """101 forwards to the mobile (confirm asked); not confirmed, 102 takes it, whispered."""
    return f"""
employees:
  "101": {{name: Ivan Petrov, ring_time: 15, endpoint: "{mobile()}",
          on_no_answer: {{action: forward, to: "102", announcement: none, whisper: {str(whisper).lower()}}}}}
  "102": {{name: Petr Ivanov, ring_time: 8}}
"""


async def test_the_mobile_and_the_colleague_hear_the_employees_name(journaled_app, sip, confirm_timeout, spoken_name):
    await spoken_name("101", "Ivan Petrov")
    confirm_timeout(1)  # the mobile hears the whole prompt and presses nothing: 102 is next
    since = log().stat().st_size
    app = await journaled_app(policy(whisper=True))
    sip.carrier_out("answer", answer_delay_ms=200)
    sip.phone("102", "answer", answer_delay_ms=200)
    caller = sip.call("101", talk_ms=300, caller=CLIENT)
    assert await caller.wait(40) == 0
    _, row = await ended_call(app)
    assert (row.status, app.ended()[-1].detail) == ("answered", "answered by 102")
    assert [e.outcome for e in app.journal.events if isinstance(e, LegEnded)] == ["no_answer", "answered"]
    assert played(since, "PJSIP/carrier-out-") == [
        "pbx_app/mobile-call-for", NAME, "pbx_app/mobile-call-from", "digits/5", "digits/5", "digits/5",
        "pbx_app/mobile-press-1"]
    assert played(since, "PJSIP/102-") == ["pbx_app/forwarded-call-for", NAME]


async def test_without_a_name_the_extension_is_said(journaled_app, sip, confirm_timeout):
    confirm_timeout(1)
    since = log().stat().st_size
    app = await journaled_app(policy(whisper=True))
    sip.carrier_out("answer", answer_delay_ms=200)
    sip.phone("102", "answer", answer_delay_ms=200)
    caller = sip.call("101", talk_ms=300, caller=CLIENT)
    assert await caller.wait(40) == 0
    await ended_call(app)
    assert played(since, "PJSIP/carrier-out-")[:4] == ["pbx_app/mobile-call-for", "digits/1", "digits/0", "digits/1"]
    assert played(since, "PJSIP/102-") == ["pbx_app/forwarded-call-for", "digits/1", "digits/0", "digits/1"]


async def test_fastagi_mode_says_the_name_too(agi_app, sip, spoken_name):  # noqa: F811
    await spoken_name("101", "Ivan Petrov")
    since = log().stat().st_size
    app = await agi_app(f"""
employees:
  "101": {{name: Ivan Petrov, ring_time: 2, on_no_answer: {{action: forward, to: "102", announcement: none, whisper: true}}}}
  "102": {{name: Petr Ivanov, ring_time: 8}}
""")
    sip.phone("101", "ring_forever")
    sip.phone("102", "answer", answer_delay_ms=200)
    caller = sip.call("101", talk_ms=300, caller=CLIENT, source_ip=AGI_CALLER_IP)
    assert await caller.wait(40) == 0
    _, row = await ended_call(app)
    assert row.status == "answered"
    assert played(since, "PJSIP/102-") == ["pbx_app/forwarded-call-for", NAME]
