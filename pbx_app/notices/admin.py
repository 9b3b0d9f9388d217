"""Notices to administrators that no call makes: the site's hourly limit of calls out reached
(pbx_app/outbound). The engine that sees it first puts one notice per recipient in the outbox
(site.outbound.notify's addresses, and the webhook when there is one); the notifier process sends
them like any other, with its retries."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Callable

from ..policy.model import Policy
from . import outbox_sql as sql
from .database import Database
from .notice import WEBHOOK

OUTBOUND_LIMIT = "outbound_limit"


class AdminNotices:
    def __init__(self, db: Database, policy: Callable[[], Policy], webhook: bool):
        self.db = db
        self.policy = policy
        self.webhook = webhook  # PBX_NOTICE_WEBHOOK_URL is set: the webhook hears of it too

    async def outbound_limit(self, text: str) -> None:
        policy, now = self.policy(), datetime.now(timezone.utc)
        facts = {"call_id": f"outbound-limit-{now:%Y%m%dT%H%M%S}", "started_at": now.isoformat(),
                 "timezone": policy.site.timezone, "detail": text, "per_site": policy.site.outbound.per_site}
        recipients = [*policy.site.outbound.notify, *([WEBHOOK] if self.webhook else [])]
        steps = [(sql.ADD_NOTICE, {"call_id": facts["call_id"], "kind": OUTBOUND_LIMIT, "recipient": recipient,
                                   "language": policy.site.language, "facts": json.dumps(facts), "now": self.db.time(now)})
                 for recipient in recipients]
        if steps:
            await self.db.run(steps)
