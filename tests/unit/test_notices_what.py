"""Which finished calls give notices, to whom, and what they say — by the history's rules. The
calls are played through the real flow against the fake Asterisk, so the journal records are
the ones the app really writes."""

from __future__ import annotations

import re
from gettext import NullTranslations
from zoneinfo import ZoneInfo

from pbx_app.history.records import CallRecord
from pbx_app.i18n import translator
from pbx_app.notices import message as message_module
from pbx_app.notices.happened import what_happened
from pbx_app.notices.message import compose, local_time
from pbx_app.notices.notice import WEBHOOK, notices_for
from pbx_app.notices.voicemail import Message
from pbx_app.policy import parse_policy
from tests.support.fake_calls import call_on_fake

POLICY = """
site: {timezone: Europe/Moscow, language: en}
employees:
  "101": {name: Ivan Petrov, email: ivan@example.test, ring_time: 3, on_no_answer: {action: forward, to: "102", announcement: none}}
  "102": {name: Petr Ivanov, email: Petr@Example.test, language: ru, ring_time: 5}
  "103": {name: Anna Smirnova, email: anna@example.test, ring_time: 4}
  "104": {name: Olga Kuznetsova, email: olga@example.test, mailbox: "104@default", ring_time: 4,
          on_no_answer: {action: voicemail}, voicemail_to: ["102", sales, boss@example.test, olga@example.test]}
  "105": {name: Sergei Volkov, ring_time: 4}
departments:
  sales: {name: Sales, members: ["102", "103", "105"]}
"""
policy = parse_policy(POLICY, "<test>")


async def record(extension: str, phones: dict, voicemail=None) -> CallRecord:
    call = await call_on_fake(extension, POLICY, phones, voicemail=voicemail)
    return call.record()


def who(notices) -> list[tuple[str, str, str]]:
    return [(n.kind, n.recipient, n.language) for n in notices]


async def test_dropped_on_no_answer_tells_the_employee():
    call = await record("103", {})
    notices = notices_for(call, policy, webhook=False)
    assert who(notices) == [("missed", "anna@example.test", "en")]
    assert what_happened(notices[0].facts, translator("en")) == ["103 Anna Smirnova did not answer",
                                                                 "the caller got the busy tone"]


async def test_forwarded_and_not_answered_is_missed_by_the_one_dialled_only():
    call = await record("101", {})
    notices = notices_for(call, policy, webhook=False)
    assert who(notices) == [("missed", "ivan@example.test", "en")], "not the colleague it was forwarded to"
    assert what_happened(notices[0].facts, translator("en")) == [
        "101 Ivan Petrov did not answer", "forwarded to 102 Petr Ivanov, not answered", "the caller got the busy tone"]


async def test_forwarded_and_answered_tells_nobody():
    call = await record("101", {"PJSIP/102": "answer"})
    assert notices_for(call, policy, webhook=True) == []


async def test_answered_tells_nobody():
    assert notices_for(await record("103", {"PJSIP/103": "answer"}), policy, webhook=True) == []


async def test_voicemail_without_a_message_is_a_missed_call():
    call = await record("104", {}, voicemail={"104@default": False})
    notices = notices_for(call, policy, webhook=False)
    assert who(notices) == [("missed", "olga@example.test", "en")]
    assert "voicemail: no message left" in what_happened(notices[0].facts, translator("en"))


async def test_voicemail_with_a_message_tells_every_recipient_once_instead_of_a_missed_call():
    call = await record("104", {}, voicemail={"104@default": True})
    notices = notices_for(call, policy, webhook=True)
    assert who(notices) == [
        ("voicemail", "olga@example.test", "en"),  # the owner first, and once though listed again
        ("voicemail", "petr@example.test", "ru"),  # in their own language; addresses in lower case
        ("voicemail", "anna@example.test", "en"),  # sales' members with an e-mail (105 has none)
        ("voicemail", "boss@example.test", "en"),
        ("voicemail", WEBHOOK, "en"),
    ]
    assert notices[0].facts["mailbox"] == "104@default"


async def test_a_webhook_gets_one_notice_per_missed_call_even_without_an_e_mail():
    call = await record("105", {})
    assert who(notices_for(call, policy, webhook=True)) == [("missed", WEBHOOK, "en")]
    assert notices_for(call, policy, webhook=False) == []


def test_a_call_in_progress_tells_nobody_yet():
    assert notices_for(CallRecord("c1", caller="79001234567", extension="103"), policy, webhook=True) == []


async def test_the_mail_has_caller_time_in_the_site_zone_employee_and_what_happened():
    call = await record("103", {})
    [notice] = notices_for(call, policy, webhook=False)
    mail = compose("id1", notice.kind, notice.recipient, notice.language, notice.facts, "pbx@example.test")
    body = mail.get_content()
    assert mail["Subject"] == f"Missed call from {call.caller}"
    assert f"Caller: {call.caller}" in body
    moscow = call.started_at.astimezone(ZoneInfo("Europe/Moscow"))
    assert f"Time: {moscow:%Y-%m-%d %H:%M:%S} (Europe/Moscow)" in body
    assert local_time(notice.facts).endswith("(Europe/Moscow)")
    assert "Employee: 103 Anna Smirnova" in body
    assert "  - 103 Anna Smirnova did not answer" in body
    assert mail["Message-ID"] == "<id1@pbx-app.notices>"


async def test_a_recording_past_the_size_limit_is_not_attached_and_the_mail_says_so(tmp_path):
    call = await record("104", {}, voicemail={"104@default": True})
    notice = notices_for(call, policy, webhook=False)[0]
    big = Message(tmp_path / "msg0000.wav", 30 * 1024 * 1024, 120)
    mail = compose("id2", notice.kind, notice.recipient, notice.language, notice.facts, "pbx@example.test", big, None)
    assert not list(mail.iter_attachments())
    assert "The recording (30.0 MB) is larger than 10 MB and is not attached" in mail.get_content()
    small = Message(tmp_path / "msg0000.wav", 4, 3)
    mail = compose("id2", notice.kind, notice.recipient, notice.language, notice.facts, "pbx@example.test", small, b"RIFF")
    [wav] = list(mail.iter_attachments())
    assert (wav.get_content_type(), wav.get_content()) == ("audio/wav", b"RIFF")


def test_a_caller_id_cannot_inject_mail_headers():
    call = CallRecord("c2", caller="123\r\nBcc: victim@example.test", extension="103", result="dropped", detail="busy")
    [notice] = notices_for(call, policy, webhook=False)
    mail = compose("id3", notice.kind, notice.recipient, notice.language, notice.facts, "pbx@example.test")
    assert mail["Bcc"] is None and "\n" not in mail["Subject"]


class Shouting(NullTranslations):
    """A stand-in catalog: 'translates' by upper-casing, so the test sees which texts went through it."""

    def gettext(self, message: str) -> str:
        return re.sub(r"[^{}]+(?=\{|$)|(?<=\})[^{}]+", lambda m: m.group().upper(), message)


async def test_each_recipient_reads_the_notice_in_their_own_language(monkeypatch):
    monkeypatch.setattr(message_module, "translator", lambda language: Shouting() if language == "ru" else NullTranslations())
    call = await record("104", {}, voicemail={"104@default": True})
    by_address = {n.recipient: n for n in notices_for(call, policy, webhook=False)}
    mails = {a: compose("id", n.kind, a, n.language, n.facts, "pbx@example.test") for a, n in by_address.items()}
    assert mails["petr@example.test"]["Subject"] == f"VOICEMAIL MESSAGE FROM {call.caller}", "102 reads Russian"
    assert "VOICEMAIL: A MESSAGE WAS LEFT" in mails["petr@example.test"].get_content()
    assert mails["olga@example.test"]["Subject"] == f"Voicemail message from {call.caller}", "the site's language"
