"""Sending what the outbox holds: each due notice is claimed with a lease, delivered (e-mail or
webhook) and journaled. A channel that fails for a reason that may pass (server away, timeout,
4xx) waits with backoff, and its other notices wait with it instead of each timing out; a
notice still unsent give_up_after seconds after it was made, or refused for good (5xx), is
given up with the reason."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Callable

import aiohttp

from ..backoff import Backoff
from . import webhook
from .message import compose
from .notice import WEBHOOK
from .outbox import Claimed, Outbox
from .settings import NoticeSettings
from .smtp import SendError, send_mail
from .voicemail import find_message

log = logging.getLogger(__name__)


class Channel:
    """One way out (mail or webhook) and how long it is away."""

    def __init__(self, name: str, settings: NoticeSettings):
        self.name = name
        self.backoff = Backoff(settings.retry_min, settings.retry_max, jitter=0.2)
        self.away_until: datetime | None = None

    def away(self, now: datetime) -> bool:
        return self.away_until is not None and now < self.away_until

    def failed(self, now: datetime) -> datetime:
        self.away_until = now + timedelta(seconds=self.backoff.next())
        return self.away_until

    def worked(self) -> None:
        self.backoff.reset()
        self.away_until = None


class Sender:
    def __init__(self, outbox: Outbox, settings: NoticeSettings, owner: str, session: aiohttp.ClientSession | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.outbox = outbox
        self.settings = settings
        self.owner = owner
        self.session = session
        self.clock = clock
        self.channels = {"mail": Channel("mail", settings), "webhook": Channel("webhook", settings)}
        self.sent = 0  # since start, for the log and the tests

    async def send_due(self, stopping: Callable[[], bool] = lambda: False) -> int:
        """Claims the due notices (a bounded batch) and tries each; how many were sent."""
        taken = self.clock()
        claimed = await self.outbox.claim(self.owner, taken, self.settings.lease, self.settings.batch)
        # Past half the lease (a slow server), the rest go back: another sender may take a row
        # whose lease ran out, and must not find this one still sending it.
        fresh = timedelta(seconds=self.settings.lease / 2)
        sent = 0
        for i, notice in enumerate(claimed):
            if stopping() or self.clock() - taken > fresh:
                await self.outbox.postpone(claimed[i:], self.owner, self.clock())
                break
            sent += await self._one(notice)
        return sent

    async def _one(self, notice: Claimed) -> int:
        channel = self.channels["webhook" if notice.recipient == WEBHOOK else "mail"]
        now = self.clock()
        if channel.away(now):
            await self.outbox.postpone([notice], self.owner, channel.away_until)  # type: ignore[arg-type]
            return 0
        deliver = self._webhook if notice.recipient == WEBHOOK else self._mail
        try:
            await deliver(notice)
        except SendError as exc:
            await self._failed(notice, channel, exc)
            return 0
        except Exception as exc:  # a notice we cannot even build must not stop the others
            log.exception("notice %s to %s cannot be sent", notice.id, notice.recipient)
            await self._failed(notice, channel, SendError(f"internal error: {type(exc).__name__}: {exc}", permanent=True))
            return 0
        channel.worked()
        if not await self.outbox.sent(notice, self.owner, self.clock()):
            log.warning("notice %s was sent after its lease ran out; another sender may send it again", notice.id)
        log.info("notice sent: %s of call %s to %s", notice.kind, notice.call_id, notice.recipient)
        self.sent += 1
        return 1

    async def _failed(self, notice: Claimed, channel: Channel, exc: SendError) -> None:
        now = self.clock()
        if exc.permanent:
            log.error("notice %s to %s given up: %s", notice.id, notice.recipient, exc.reason)
            await self.outbox.failed(notice, self.owner, exc.reason, None)
            return
        retry_at = channel.failed(now)
        if (retry_at - notice.created_at).total_seconds() > self.settings.give_up_after:
            log.error("notice %s to %s given up after %d tries: %s", notice.id, notice.recipient, notice.attempts + 1,
                      exc.reason)
            await self.outbox.failed(notice, self.owner, exc.reason, None)
            return
        log.warning("notice %s to %s not sent (%s); %s is retried at %s", notice.id, notice.recipient, exc.reason,
                    channel.name, retry_at.isoformat(timespec="seconds"))
        await self.outbox.failed(notice, self.owner, exc.reason, retry_at)

    async def _mail(self, notice: Claimed) -> None:
        smtp = self.settings.smtp
        if smtp is None:
            raise SendError("no SMTP server is set (PBX_SMTP_HOST)", permanent=True)
        message = recording = None
        facts = notice.facts
        if notice.kind == "voicemail" and facts.get("started_at") and facts.get("mailbox"):
            message = await asyncio.to_thread(
                find_message, self.settings.voicemail_dir, facts["mailbox"], facts.get("channel_name") or "",
                datetime.fromisoformat(facts["started_at"]),
                datetime.fromisoformat(facts["ended_at"]) if facts.get("ended_at") else None)
            if message is not None and message.size <= self.settings.max_attachment_bytes:
                recording = await asyncio.to_thread(_read_bounded, message.wav, self.settings.max_attachment_bytes)
                if recording is None:
                    message = None  # gone (or grown) since it was found: say it was not found
        mail = compose(notice.id, notice.kind, notice.recipient, notice.language, facts, smtp.sender,
                       message, recording, self.settings.max_attachment_bytes)
        await asyncio.to_thread(send_mail, smtp, mail)

    async def _webhook(self, notice: Claimed) -> None:
        if self.session is None or not self.settings.webhook_url:
            raise SendError("no webhook is set (PBX_NOTICE_WEBHOOK_URL)", permanent=True)
        await webhook.post(self.session, self.settings.webhook_url, notice.id,
                           webhook.payload(notice.kind, notice.facts, notice.language), self.settings.webhook_timeout)


def _read_bounded(path, most: int) -> bytes | None:
    """The file, or None if it grew past ``most`` or went away since it was measured."""
    try:
        with open(path, "rb") as f:
            data = f.read(most + 1)
    except OSError:
        return None
    return data if len(data) <= most else None


