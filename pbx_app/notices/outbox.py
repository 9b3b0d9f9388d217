"""The durable outbox: notices made from finished calls, claimed by one sender at a time, and
journaled as they are sent, failed or given up (tables in outbox_sql.py)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..history.records import CallRecord
from ..history.store import records
from . import outbox_sql as sql
from .database import Database
from .notice import Notice


@dataclass(frozen=True)
class Claimed:
    """A notice this sender holds the lease on."""

    call_id: str
    kind: str
    recipient: str
    language: str
    facts: dict
    attempts: int  # tries before this one
    created_at: datetime

    @property
    def key(self) -> dict:
        return {"call_id": self.call_id, "kind": self.kind, "recipient": self.recipient}

    @property
    def id(self) -> str:
        """Stable across retries and senders: the mail's Message-ID, the webhook's Idempotency-Key."""
        return f"{self.call_id}.{self.kind}.{hashlib.sha256(self.recipient.encode()).hexdigest()[:16]}"


class Outbox:
    def __init__(self, db: Database):
        self.db = db

    async def enabled_since(self, now: datetime) -> datetime:
        """When the first notifier started on this database; this one, if it is the first."""
        _, [row] = await self.db.run([(sql.ENABLE, {"now": now.isoformat()}), (sql.ENABLED_SINCE, {})])
        return datetime.fromisoformat(row["value"])

    async def unseen_calls(self, lo: datetime, hi: datetime, limit: int) -> list[CallRecord]:
        """Finished calls started in [lo, hi) with no notices made yet, oldest first."""
        params = {"lo": self.db.time(lo), "hi": self.db.time(hi), "limit": limit}
        calls, legs = await self.db.run([(sql.UNSEEN_CALLS, params), (sql.UNSEEN_LEGS, params)], write=False)
        return records(calls, legs, self.db.read_time)

    async def oldest_open(self, lo: datetime) -> datetime | None:
        [[row]] = await self.db.run([(sql.OLDEST_OPEN, {"lo": self.db.time(lo)})], write=False)
        return self.db.read_time(row["oldest"])

    async def add(self, made: list[tuple[str, list[Notice]]], now: datetime) -> None:
        """Calls' notices and the marks that the calls were seen, in one transaction: a call is
        turned into notices once, and a notice exists once, however many notifiers look."""
        at = self.db.time(now)
        steps = []
        for call_id, notices in made:
            steps += [(sql.ADD_NOTICE, {"call_id": n.call_id, "kind": n.kind, "recipient": n.recipient,
                                        "language": n.language, "facts": json.dumps(n.facts, ensure_ascii=False),
                                        "now": at}) for n in notices]
            steps.append((sql.SEEN_CALL, {"call_id": call_id, "now": at, "notices": len(notices)}))
        if steps:
            await self.db.run(steps)

    async def claim(self, owner: str, now: datetime, lease: float, limit: int) -> list[Claimed]:
        [rows] = await self.db.run([(sql.CLAIM, {"owner": owner, "now": self.db.time(now), "limit": limit,
                                                 "until": self.db.time(now + timedelta(seconds=lease))})])
        return sorted((Claimed(r["call_id"], r["kind"], r["recipient"], r["language"], json.loads(r["facts"]),
                               r["attempts"], self.db.read_time(r["created_at"])) for r in rows),
                      key=lambda c: (c.created_at, c.call_id, c.recipient))

    async def sent(self, notice: Claimed, owner: str, now: datetime) -> bool:
        """False: the lease had run out and someone else may have taken the notice."""
        [rows] = await self.db.run([(sql.SENT + " RETURNING call_id", {**notice.key, "owner": owner, "now": self.db.time(now)})])
        return bool(rows)

    async def failed(self, notice: Claimed, owner: str, reason: str, retry_at: datetime | None) -> None:
        """``retry_at`` None: given up."""
        state = "failed" if retry_at is not None else "given_up"
        next_at = self.db.time(retry_at or notice.created_at)
        await self.db.run([(sql.FAILED, {**notice.key, "owner": owner, "state": state, "reason": reason[:500],
                                         "next_at": next_at})])

    async def postpone(self, notices: list[Claimed], owner: str, until: datetime) -> None:
        if notices:
            await self.db.run([(sql.POSTPONE, {**n.key, "owner": owner, "next_at": self.db.time(until)}) for n in notices])

    async def prune(self, notices_before: datetime, seen_before: datetime) -> None:
        await self.db.run([(sql.PRUNE_NOTICES, {"before": self.db.time(notices_before)}),
                           (sql.PRUNE_SEEN, {"before": self.db.time(seen_before)})])

    async def journal(self) -> list[dict]:
        """Every notice and its state (tests, and an operator's look)."""
        [rows] = await self.db.run([("SELECT * FROM notices ORDER BY created_at, call_id, kind, recipient", {})],
                                   write=False)
        return rows
