"""Callback requests, kept in the journal's database (table callback_requests) so that they
outlive any engine. The SQL is shared by SQLite and PostgreSQL, as in history/store.py.

A request is served by exactly one engine at a time: an engine claims it with a conditional
UPDATE that also takes a lease (lease_owner, lease_until) and renews the lease while it calls.
An engine that dies leaves the lease to run out; then any engine (or the same one restarted)
may claim the request again. Every change after the claim is conditional on still holding the
lease, so an engine that lost its lease cannot overwrite what the new holder did.

States: waiting → calling → done (answered by the employee and the client) | waiting again
(the employee or the client did not answer) | client_no_answer (attempts used up) | expired |
refused (the outbound guard no longer lets the number be dialled)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from ..db.schema_versions import Component
from ..routing.plan import Offer

State = Literal["waiting", "calling", "done", "client_no_answer", "expired", "refused"]
FINAL: tuple[State, ...] = ("done", "client_no_answer", "expired", "refused")
MAX_LISTED = 500  # requests looked at per round: bounded work however long the queue


@dataclass(frozen=True)
class CallbackRequest:
    id: str  # the call id of the call that asked: one request per call, and the story's key
    employee: str  # who calls back (an extension)
    endpoint: str  # their Dial() string, e.g. PJSIP/101
    client: str  # the client's digits
    route: str  # Dial() template for the client, {number}: their digits
    requested_at: datetime
    expires_at: datetime
    next_try_at: datetime
    max_attempts: int
    retry_after: int  # s
    leg: int  # the last leg number used in the call's journal
    state: State = "waiting"
    attempts: int = 0  # calls made to the client
    answered_by: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None

    @property
    def dial(self) -> str:
        return self.route.replace("{number}", self.client)


def offered(step: Offer, call_id: str, client: str, leg: int, now: datetime, busy: bool) -> CallbackRequest:
    """The request a client makes by pressing 1 at ``step`` (both modes, ARI and FastAGI).
    Busy: the employee is on another call and free when it ends. Not answered: not at once again."""
    first_try = now if busy else now + timedelta(seconds=step.retry_after)
    return CallbackRequest(
        id=call_id, employee=step.extension, endpoint=step.endpoint, client=client, route=step.route,
        requested_at=now, expires_at=now + timedelta(seconds=step.expires_after), next_try_at=first_try,
        max_attempts=step.attempts, retry_after=step.retry_after, leg=leg)


COLUMNS = ("id", "employee", "endpoint", "client", "route", "requested_at", "expires_at", "next_try_at",
           "max_attempts", "retry_after", "leg", "state", "attempts", "answered_by", "lease_owner", "lease_until")
TIMES = ("requested_at", "expires_at", "next_try_at", "lease_until")


def schema(time_type: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS callback_requests (
    id text PRIMARY KEY,            -- the call id (calls.call_id) of the call that asked
    employee text NOT NULL,
    endpoint text NOT NULL,
    client text NOT NULL,
    route text NOT NULL,
    requested_at {time_type} NOT NULL,
    expires_at {time_type} NOT NULL,
    next_try_at {time_type} NOT NULL,
    max_attempts integer NOT NULL,
    retry_after integer NOT NULL,
    leg integer NOT NULL,           -- the last leg number of the call's journal
    state text NOT NULL,            -- waiting, calling, done, client_no_answer, expired
    attempts integer NOT NULL DEFAULT 0,
    answered_by text,
    lease_owner text,
    lease_until {time_type}
);
CREATE INDEX IF NOT EXISTS callback_requests_open ON callback_requests (requested_at) WHERE state IN ('waiting', 'calling');
CREATE INDEX IF NOT EXISTS callback_requests_pending ON callback_requests (client) WHERE state IN ('waiting', 'calling');
"""


# Versioned with the journal's tables (pbx_app/db/schema_versions.py); version 1 is the
# release of 2026-12-07's table.
CALLBACKS = Component(name="callbacks", first_table="callback_requests", create=schema)

# One pending request per number: a second press of 1 while one waits adds nothing.
INSERT = f"""
    INSERT INTO callback_requests ({", ".join(COLUMNS)}) SELECT {", ".join(":" + c for c in COLUMNS)}
    WHERE NOT EXISTS (SELECT 1 FROM callback_requests WHERE client = :client AND state IN ('waiting', 'calling'))
    ON CONFLICT (id) DO NOTHING"""
SELECT = f"SELECT {', '.join(COLUMNS)} FROM callback_requests"
GET = SELECT + " WHERE id = :id"
# Waiting ones, and those whose holder's lease ran out (it died while calling): oldest first.
OPEN = SELECT + f"""
    WHERE state = 'waiting' OR (state = 'calling' AND lease_until < :now)
    ORDER BY requested_at, id LIMIT {MAX_LISTED}"""
# One callback at a time per employee: no other request of theirs may be held under a live lease.
CLAIM = """
    UPDATE callback_requests SET state = 'calling', lease_owner = :owner, lease_until = :until, leg = leg + 1
    WHERE id = :id AND expires_at > :now
      AND (state = 'waiting' OR (state = 'calling' AND lease_until < :now))
      AND NOT EXISTS (SELECT 1 FROM callback_requests AS other
                      WHERE other.employee = callback_requests.employee AND other.id <> callback_requests.id
                        AND other.state = 'calling' AND other.lease_until >= :now)"""
RENEW = """
    UPDATE callback_requests SET lease_until = :until
    WHERE id = :id AND state = 'calling' AND lease_owner = :owner"""
FINISH = """
    UPDATE callback_requests SET state = :state, attempts = :attempts, next_try_at = :next_try_at,
        answered_by = :answered_by, lease_owner = NULL, lease_until = NULL
    WHERE id = :id AND state = 'calling' AND lease_owner = :owner"""
# Past its time: waiting, or held by a lease that ran out. The leg is the story's "expired" line.
EXPIRE = """
    UPDATE callback_requests SET state = 'expired', lease_owner = NULL, lease_until = NULL, leg = leg + 1
    WHERE id = :id AND expires_at <= :now
      AND (state = 'waiting' OR (state = 'calling' AND lease_until < :now))"""


class CallbackStore(Protocol):
    url: str

    async def add(self, request: CallbackRequest) -> bool:
        """Stores a new request: False when the call id, or a pending request for the same
        client, is there already (nothing added)."""

    async def get(self, request_id: str) -> CallbackRequest | None: ...

    async def open(self, now: datetime) -> list[CallbackRequest]:
        """Waiting requests and those left by a dead holder, oldest first (at most MAX_LISTED)."""

    async def claim(self, request: CallbackRequest, owner: str, now: datetime, until: datetime) -> CallbackRequest | None:
        """Takes the request for ``owner`` until ``until``; None when another engine has it, it is
        over, or another request of the same employee is being called back."""

    async def renew(self, request_id: str, owner: str, until: datetime) -> bool: ...

    async def finish(self, request_id: str, owner: str, state: State, attempts: int, next_try_at: datetime,
                     answered_by: str | None = None) -> bool:
        """Ends one attempt (back to waiting, or a final state); False when the lease was lost."""

    async def expire(self, request: CallbackRequest, now: datetime) -> CallbackRequest | None:
        """Marks the request expired if it is past its time and nobody holds it: the expired
        request (with the leg of its last line) to whoever won, else None."""

    async def close(self) -> None: ...


def params(request: CallbackRequest, time) -> dict:
    values = {c: getattr(request, c) for c in COLUMNS}
    for c in TIMES:
        values[c] = time(values[c])
    return values


def from_row(row: dict, time) -> CallbackRequest:
    values = {c: row[c] for c in COLUMNS}
    for c in TIMES:
        values[c] = time(values[c])
    return CallbackRequest(**values)
