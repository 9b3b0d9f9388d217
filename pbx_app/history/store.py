"""Where the journal lands: a database (SQLite by default, PostgreSQL by URL) with one row per
call and one per leg, which reporting tools can read directly. The SQL is shared; each backend
says how it connects, how it keeps times and how it runs a transaction.

    sqlite:////var/lib/pbx_app/journal.db       (four slashes: an absolute path)
    postgresql://pbx@127.0.0.1:5432/pbx         (any libpq URI; the password from ~/.pgpass or PGPASSWORD)

Shipping a batch of events and moving the spool's position happen in one transaction, so a
batch is applied exactly once even when the app dies between the two; the upserts are also
idempotent, so a replay after a lost position does no harm either."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol, Sequence

from .events import CallEnded, CallStarted, JournalEvent, LegEnded, LegStarted
from .records import CallRecord, LegRecord
from .spool import Position

CALL_COLUMNS = ("call_id", "started_at", "caller", "extension", "channel_id", "channel_name", "reasons",
                "ended_at", "result", "detail")
LEG_COLUMNS = ("call_id", "leg", "role", "targets", "department", "started_at", "ended_at", "outcome",
               "answered_by", "answered_at", "cause")

# Placeholders are :name; the PostgreSQL backend rewrites them for its driver.
UPSERT = {
    CallStarted: """
        INSERT INTO calls (call_id, started_at, caller, extension, channel_id, channel_name, reasons)
        VALUES (:call_id, :at, :caller, :extension, :channel_id, :channel_name, :reasons)
        ON CONFLICT (call_id) DO UPDATE SET started_at = excluded.started_at, caller = excluded.caller,
            extension = excluded.extension, channel_id = excluded.channel_id,
            channel_name = excluded.channel_name, reasons = excluded.reasons""",
    CallEnded: """
        INSERT INTO calls (call_id, ended_at, result, detail) VALUES (:call_id, :at, :result, :detail)
        ON CONFLICT (call_id) DO UPDATE SET ended_at = excluded.ended_at, result = excluded.result,
            detail = excluded.detail""",
    LegStarted: """
        INSERT INTO legs (call_id, leg, role, targets, department, started_at)
        VALUES (:call_id, :leg, :role, :targets, :department, :at)
        ON CONFLICT (call_id, leg) DO UPDATE SET role = excluded.role, targets = excluded.targets,
            department = excluded.department, started_at = excluded.started_at""",
    LegEnded: """
        INSERT INTO legs (call_id, leg, ended_at, outcome, answered_by, answered_at, cause)
        VALUES (:call_id, :leg, :at, :outcome, :answered_by, :answered_at, :cause)
        ON CONFLICT (call_id, leg) DO UPDATE SET ended_at = excluded.ended_at, outcome = excluded.outcome,
            answered_by = COALESCE(excluded.answered_by, legs.answered_by),
            answered_at = COALESCE(excluded.answered_at, legs.answered_at),
            cause = COALESCE(excluded.cause, legs.cause)""",
}

GET_POSITION = "SELECT segment_no, byte_offset FROM journal_spools WHERE spool = :spool"
PUT_POSITION = """
    INSERT INTO journal_spools (spool, segment_no, byte_offset, shipped_at) VALUES (:spool, :segment, :offset, :now)
    ON CONFLICT (spool) DO UPDATE SET segment_no = excluded.segment_no, byte_offset = excluded.byte_offset,
        shipped_at = excluded.shipped_at"""
SELECT_CALLS = f"""
    SELECT {", ".join(CALL_COLUMNS)} FROM calls
    WHERE started_at >= :start AND started_at < :end ORDER BY started_at, call_id"""
SELECT_LEGS = f"""
    SELECT {", ".join("legs." + c for c in LEG_COLUMNS)} FROM legs JOIN calls ON calls.call_id = legs.call_id
    WHERE calls.started_at >= :start AND calls.started_at < :end ORDER BY legs.call_id, legs.leg"""
# One call by its id (the page's voicemail player).
SELECT_CALL = f"""SELECT {", ".join(CALL_COLUMNS)} FROM calls WHERE call_id = :call_id"""
SELECT_CALL_LEGS = f"""SELECT {", ".join(LEG_COLUMNS)} FROM legs WHERE call_id = :call_id ORDER BY leg"""

# Calls not ended yet: the reconciler's question, every few seconds (the calls_open index answers it).
SELECT_OPEN_CALLS = SELECT_CALLS.replace("WHERE started_at", "WHERE ended_at IS NULL AND started_at")
SELECT_OPEN_LEGS = SELECT_LEGS.replace("WHERE calls.started_at", "WHERE calls.ended_at IS NULL AND calls.started_at")


def schema(time_type: str) -> str:
    """The tables, in SQL both backends take; only times differ: ``timestamptz`` in PostgreSQL,
    ``text`` in SQLite (ISO 8601, UTC, microseconds: sorts as time). SQLite gives any type
    naming INT integer affinity, so bigint is its 64-bit INTEGER."""
    return f"""
CREATE TABLE IF NOT EXISTS calls (
    call_id text PRIMARY KEY,
    started_at {time_type},
    caller text,
    extension text,             -- the employee the client dialled
    channel_id text,            -- the caller's channel uniqueid = the CDR linkedid of every leg
    channel_name text,
    reasons text,               -- JSON list: why the plan was what it was
    ended_at {time_type},
    result text,                -- answered, dropped, voicemail, caller_hung_up, failed; NULL: not ended
    detail text
);
CREATE INDEX IF NOT EXISTS calls_started_at ON calls (started_at);
CREATE INDEX IF NOT EXISTS calls_channel_id ON calls (channel_id);
-- Calls not ended yet: the reconciler's question, every few seconds.
CREATE INDEX IF NOT EXISTS calls_open ON calls (started_at) WHERE ended_at IS NULL;
CREATE TABLE IF NOT EXISTS legs (
    call_id text NOT NULL,
    leg integer NOT NULL,       -- 1, 2, ... as in CDR userfield callid:leg:role:who
    role text,                  -- employee, forward, announcement, voicemail, drop_message
    targets text,               -- JSON list of extensions rung
    department text,
    started_at {time_type},
    ended_at {time_type},
    outcome text,               -- answered, no_answer, busy, unreachable, caller_hung_up, played, message_left, no_message
    answered_by text,
    answered_at {time_type},
    cause text,
    PRIMARY KEY (call_id, leg)
);
CREATE TABLE IF NOT EXISTS journal_spools (
    spool text PRIMARY KEY,     -- a spool folder's id: how far its lines are in this database
    segment_no bigint NOT NULL,
    byte_offset bigint NOT NULL,
    shipped_at {time_type}
);
"""


class StoreError(RuntimeError):
    """The database cannot be reached or refused a write; the shipper retries."""


class Store(Protocol):
    url: str

    async def position(self, spool: str) -> Position | None: ...

    async def ship(self, spool: str, expected: Position | None, events: Sequence[JournalEvent], end: Position) -> Position:
        """Applies ``events`` and records ``end`` as the spool's position — unless the database
        already holds another position than ``expected`` (someone else shipped): then nothing
        is applied and the stored position is returned."""
        ...

    async def calls(self, start: datetime, end: datetime, open_only: bool = False) -> list[CallRecord]:
        """The calls started in [start, end); ``open_only``: those not ended yet."""
        ...

    async def call(self, call_id: str) -> CallRecord | None: ...

    async def close(self) -> None: ...


def event_params(event: JournalEvent, time) -> dict[str, Any]:
    """The SQL parameters of one event; ``time`` turns a datetime into the backend's value."""
    params: dict[str, Any] = {"call_id": event.call_id, "at": time(event.at)}
    if isinstance(event, CallStarted):
        params.update(caller=event.caller, extension=event.extension, channel_id=event.channel_id,
                      channel_name=event.channel_name, reasons=json.dumps(list(event.reasons), ensure_ascii=False))
    elif isinstance(event, CallEnded):
        params.update(result=event.result, detail=event.detail)
    elif isinstance(event, LegStarted):
        params.update(leg=event.leg, role=event.role, targets=json.dumps(list(event.targets)), department=event.department)
    elif isinstance(event, LegEnded):
        params.update(leg=event.leg, outcome=event.outcome, answered_by=event.answered_by,
                      answered_at=time(event.answered_at), cause=event.cause)
    return params


def records(call_rows: list[dict], leg_rows: list[dict], time) -> list[CallRecord]:
    """Rows from the database to records; ``time`` reads the backend's time values."""
    legs: dict[str, list[LegRecord]] = {}
    for row in leg_rows:
        legs.setdefault(row["call_id"], []).append(
            LegRecord(
                leg=row["leg"], role=row["role"], targets=tuple(json.loads(row["targets"] or "[]")),
                department=row["department"], started_at=time(row["started_at"]), ended_at=time(row["ended_at"]),
                outcome=row["outcome"], answered_by=row["answered_by"], answered_at=time(row["answered_at"]),
                cause=row["cause"],
            )
        )
    return [
        CallRecord(
            call_id=row["call_id"], started_at=time(row["started_at"]), caller=row["caller"] or "",
            extension=row["extension"] or "", channel_id=row["channel_id"] or "", channel_name=row["channel_name"] or "",
            reasons=tuple(json.loads(row["reasons"] or "[]")), ended_at=time(row["ended_at"]), result=row["result"],
            detail=row["detail"] or "", legs=tuple(legs.get(row["call_id"], ())),
        )
        for row in call_rows
    ]
