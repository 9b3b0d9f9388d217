"""Issue 14, notices: real calls through the test bed's Asterisk, the engine journaling them,
and `pbx-app notify` as its own process sending e-mail to a real local SMTP server (aiosmtpd:
STARTTLS, AUTH LOGIN) and POSTs to a webhook. A missed call gives one e-mail; a voicemail
message left through Asterisk one e-mail per recipient with the WAV attached; an SMTP server
that is down never touches the call, and the e-mail arrives once it is back."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web

from pbx_app.notices.database import open_database
from pbx_app.notices.outbox import Outbox
from tests.support.engines import EngineProcess
from tests.support.net import free_port
from tests.support.smtp import SmtpServer
from tests.support.wait import until

from .test_history_calls import ROOT, clear_mailbox, ended_call, journaled_app  # noqa: F401 (a fixture)

POLICY = """
site: {timezone: Europe/Moscow}
employees:
  "102": {name: Petr Ivanov, email: petr@example.test, ring_time: 3}
  "103": {name: Anna Smirnova, email: anna@example.test, ring_time: 2, on_no_answer: {action: forward, to: "102", announcement: none}}
  "104": {name: Olga Kuznetsova, email: olga@example.test, ring_time: 2, mailbox: "104@default",
          on_no_answer: {action: voicemail}, voicemail_to: ["102", boss@example.test]}
  "105": {name: Sergei Volkov, email: sergei@example.test, ring_time: 2}
"""
VOICEMAIL = ROOT / "var/spool/asterisk/voicemail"


@pytest.fixture
def smtp(tmp_path):
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
async def webhook():
    """A receiver for the site's webhook: every POST's JSON body, in order."""
    got: list[dict] = []

    async def receive(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/notices", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/notices", got
    await runner.cleanup()


@pytest.fixture
async def notified(journaled_app, smtp, webhook, tmp_path):  # noqa: F811
    """The engine (in this process, journaling to SQLite) and `pbx-app notify` beside it."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    app = await journaled_app(POLICY)
    notifier = EngineProcess(tmp_path, "notify", {
        **smtp.env(), "PBX_DATABASE_URL": app.store_url, "PBX_POLICY": str(policy), "PBX_VOICEMAIL_DIR": str(VOICEMAIL),
        "PBX_NOTICE_WEBHOOK_URL": webhook[0], "PBX_NOTICE_POLL": "0.3", "PBX_NOTICE_RETRY_MIN": "1",
        "PBX_NOTICE_RETRY_MAX": "2"}, command="notify").start()
    await until(lambda: "notifier " in notifier.log() or notifier.proc.poll() is not None, 15, "the notifier starts")
    assert notifier.proc.poll() is None, notifier.log()
    app.notifier = notifier
    yield app
    notifier.stop()
    assert "s3cret-pw" not in notifier.log(), "the SMTP password is never logged"


async def outbox_rows(url: str) -> list[dict]:
    outbox = Outbox(open_database(url))
    try:
        return await outbox.journal()
    finally:
        await outbox.db.close()


def text(mail) -> str:
    return mail.get_body(("plain",)).get_content()


async def settle(seconds: float = 2.0) -> None:
    """Several of the notifier's looks (0.3 s apart): a second e-mail, if one were coming, would be here."""
    await asyncio.sleep(seconds)  # deliberate: nothing announces an e-mail that must not come


async def test_a_missed_call_gives_one_email_and_one_webhook_post(notified, smtp, webhook, sip):
    sip.phone("105", "ring_forever")
    caller = sip.call("105")
    await caller.wait(20)
    call, row = await ended_call(notified)
    assert (row.employee, row.status) == ("105", "missed")
    await until(lambda: smtp.messages and webhook[1], 15, lambda: f"the e-mail and the POST:\n{notified.notifier.log()}")
    await settle()
    [mail] = smtp.messages
    [post] = webhook[1]
    assert (mail["To"], mail["Subject"]) == ("sergei@example.test", "Missed call from 79001234567")
    moscow = row.started_at.astimezone(ZoneInfo("Europe/Moscow"))
    body = text(mail)
    for line in ("Caller: 79001234567", f"Time: {moscow:%Y-%m-%d %H:%M:%S} (Europe/Moscow)",
                 "Employee: 105 Sergei Volkov", "  - 105 Sergei Volkov did not answer", "  - the caller got the busy tone"):
        assert line in body, body
    assert (post["kind"], post["call_id"], post["employee"], post["caller"]) == ("missed", call.call_id, "105", "79001234567")
    assert [(r["recipient"], r["state"]) for r in await outbox_rows(notified.store_url)] == [
        ("sergei@example.test", "sent"), ("webhook", "sent")]


async def test_forwarded_and_not_answered_tells_the_one_dialled_and_answered_tells_nobody(notified, smtp, sip):
    sip.phone("103", "ring_forever")
    sip.phone("102", "ring_forever")
    await sip.call("103").wait(30)
    await ended_call(notified)
    sip.phone("102", "answer", answer_delay_ms=300)
    assert await sip.call("102", talk_ms=500).wait(20) == 0
    await ended_call(notified, 2)
    await until(lambda: smtp.messages, 15, lambda: f"an e-mail:\n{notified.notifier.log()}")
    await settle()
    [mail] = smtp.messages
    assert mail["To"] == "anna@example.test", "not 102, who was only forwarded to"
    assert "  - forwarded to 102 Petr Ivanov, not answered" in text(mail)


@pytest.mark.timeout(120)
async def test_a_voicemail_message_gives_one_email_per_recipient_with_the_wav(notified, smtp, sip):
    clear_mailbox("104")
    sip.phone("104", "ring_forever")
    caller = sip.call("104", audio_after_ms=13000, talk_ms=6000)  # speaks after the beep
    await caller.wait(45)
    call, row = await ended_call(notified, timeout=15)
    assert (row.status, row.label) == ("missed", "Voicemail")
    [recording] = (VOICEMAIL / "default/104/INBOX").glob("msg*.wav")
    await until(lambda: len(smtp.messages) >= 3, 15, lambda: f"3 e-mails:\n{notified.notifier.log()}")
    await settle()
    assert sorted(m["To"] for m in smtp.messages) == ["boss@example.test", "olga@example.test", "petr@example.test"]
    for mail in smtp.messages:
        assert mail["Subject"] == "Voicemail message from 79001234567"
        [wav] = list(mail.iter_attachments())
        assert wav.get_content_type() == "audio/wav"
        assert wav.get_content() == recording.read_bytes(), "the message Asterisk recorded in this call"
        assert "Mailbox: 104@default" in text(mail) and "voicemail: a message was left" in text(mail)


@pytest.mark.timeout(120)
async def test_smtp_down_during_the_call_the_call_is_unaffected_and_the_email_arrives_once_it_is_back(notified, smtp, sip):
    smtp.stop()
    sip.phone("105", "ring_forever")
    caller = sip.call("105")
    await caller.wait(20)
    call, row = await ended_call(notified)
    assert (row.status, row.what_happened) == ("missed", "no answer; busy tone"), "the call went as the policy says"
    assert 1.5 <= (row.ended_at - row.started_at).total_seconds() <= 4, "2 s of ringing, no wait for SMTP"

    async def failed() -> bool:
        return any(r["recipient"] != "webhook" and r["state"] == "failed" for r in await outbox_rows(notified.store_url))

    await until(failed, 15, lambda: f"the notice journaled as failed:\n{notified.notifier.log()}")
    [mail_row] = [r for r in await outbox_rows(notified.store_url) if r["recipient"] != "webhook"]
    assert "Connection refused" in mail_row["last_error"]
    smtp.start()
    await until(lambda: smtp.messages, 20, lambda: f"the e-mail after the server came back:\n{notified.notifier.log()}")
    await settle(3.0)
    [mail] = smtp.messages
    assert mail["To"] == "sergei@example.test" and "Caller: 79001234567" in text(mail)
    [mail_row] = [r for r in await outbox_rows(notified.store_url) if r["recipient"] != "webhook"]
    assert mail_row["state"] == "sent" and mail_row["attempts"] >= 2
