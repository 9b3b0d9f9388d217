"""`pbx-app notify`: the notifier process. It looks for finished calls in the journal's
database every PBX_NOTICE_POLL seconds, makes their notices, and sends the due ones. Several
notifiers (hosts) may run against one database: the outbox's keys and leases keep every notice
made once and sent once. It shares nothing with the engines but the database, so nothing it
does (an SMTP server that hangs, a slow webhook) reaches a call."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import datetime, timedelta, timezone

import aiohttp

from ..backoff import Backoff
from ..db.errors import StoreError
from ..history.journal import safe_url
from ..settings import Settings
from ..startup import CANNOT_START, load_policy, stop_on_signals
from .database import open_database
from .outbox import Outbox
from .scanner import Scanner
from .sender import Sender
from .settings import NoticeSettings
from ..waiting import set_within

log = logging.getLogger(__name__)

PRUNE_EVERY = timedelta(hours=1)


async def run_notifier(settings: Settings, notices: NoticeSettings) -> int:
    if not notices.enabled:
        log.error("notices are off: set PBX_SMTP_HOST (e-mail) or PBX_NOTICE_WEBHOOK_URL")
        return 2
    policy = load_policy(settings)
    if policy is None:
        return CANNOT_START
    outbox = Outbox(open_database(settings.database_url))
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    session = aiohttp.ClientSession() if notices.webhook_url else None
    scanner = Scanner(outbox, policy, webhook=bool(notices.webhook_url), max_age=notices.max_age, batch=notices.batch)
    sender = Sender(outbox, notices, owner, session)
    stop = stop_on_signals(policy)
    watching = asyncio.create_task(policy.watch())
    smtp = notices.smtp
    log.info("notifier %s: journal %s; e-mail %s; webhook %s", owner, safe_url(settings.database_url),
             f"{smtp.host}:{smtp.port} as {smtp.user or '(no login)'}" if smtp else "off",
             "on" if notices.webhook_url else "off")
    try:
        await _loop(outbox, scanner, sender, notices, stop)
    finally:
        watching.cancel()
        if session is not None:
            await session.close()
        await outbox.db.close()
    return 0


async def _loop(outbox: Outbox, scanner: Scanner, sender: Sender, notices: NoticeSettings, stop: asyncio.Event) -> None:
    retry = Backoff(1.0, 30.0, jitter=0.2)
    database_down = False
    pruned: datetime | None = None
    while not stop.is_set():
        wait = notices.poll_interval
        try:
            await scanner.scan()
            await sender.send_due(stop.is_set)
            now = datetime.now(timezone.utc)
            if pruned is None or now - pruned > PRUNE_EVERY:
                await outbox.prune(now - timedelta(days=notices.keep_days), now - timedelta(seconds=2 * notices.max_age))
                pruned = now
            if database_down:
                log.info("notifier: the database is back")
            database_down = False
            retry.reset()
        except StoreError as exc:
            if not database_down:
                log.error("notifier: the journal's database is not answering (%s); retrying", exc)
            database_down = True
            wait = retry.next()
        await set_within(stop, wait)
