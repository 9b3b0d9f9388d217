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
from dataclasses import dataclass
from datetime import datetime
from typing import Any, AsyncIterator, Protocol, Sequence

from .events import CallEnded, CallStarted, JournalEvent, LegEnded, LegStarted
from .records import CallRecord, LegRecord
from .rows import history_row
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
    detail text,
    counted_for text,           -- the history row's summary (rows.py), kept with each write so
    status text,                -- the page filters and pages in the database: whom the call counts
    label text                  -- for, answered/missed/in progress, Voicemail/Callback
);
CREATE INDEX IF NOT EXISTS calls_newest ON calls (started_at, call_id);
CREATE INDEX IF NOT EXISTS calls_channel_id ON calls (channel_id);
-- Calls not ended yet: the reconciler's question, every few seconds.
CREATE INDEX IF NOT EXISTS calls_open ON calls (started_at) WHERE ended_at IS NULL;
-- The page's filters: one employee's calls (counted for them, or dialled to them), missed only, voicemail only.
CREATE INDEX IF NOT EXISTS calls_counted_for ON calls (counted_for, started_at);
CREATE INDEX IF NOT EXISTS calls_dialled ON calls (extension, started_at);
CREATE INDEX IF NOT EXISTS calls_missed ON calls (started_at, call_id) WHERE status = 'missed';
CREATE INDEX IF NOT EXISTS calls_voicemail ON calls (started_at, call_id) WHERE label = 'Voicemail';
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


@dataclass(frozen=True)
class CallFilter:
    """Which calls a reader asks for: started in [start, end), and the page's filters. The rows
    come newest first, as the page shows them (``newest_first`` False: oldest first)."""

    start: datetime
    end: datetime
    involving: str | None = None  # counted for this extension, or dialled to it (the page's employee filter)
    counted_for: str | None = None  # counted for this extension only (`pbx-app history --employee`)
    missed: bool = False
    voicemail: bool = False
    newest_first: bool = True


async def page_batches(page, f: CallFilter, size: int) -> AsyncIterator[list[CallRecord]]:
    """Every call ``f`` keeps, ``size`` at a time, each page after the last one's (time, id): the
    same SQL for both backends' ``page``, never an OFFSET that grows with the export."""
    after = None
    while True:
        found = await page(f, size, after=after)
        if not found:
            return
        yield found
        if len(found) < size:
            return
        after = (found[-1].started_at, found[-1].call_id)


def _where(f: CallFilter, after: bool, who: str | None = None) -> str:
    # Literal status/label values: the partial indexes calls_missed and calls_voicemail match them.
    parts = ["started_at >= :start", "started_at < :end"]
    if who:
        parts.append(f"{who} = :who")
    if f.counted_for is not None:
        parts.append("counted_for = :counted_for")
    if f.missed:
        parts.append("status = 'missed'")
    if f.voicemail:
        parts.append("label = 'Voicemail'")
    if after:  # keyset: past the last row of the previous batch
        parts.append("(started_at, call_id) " + ("<" if f.newest_first else ">") + " (:after_at, :after_id)")
    return " AND ".join(parts)


def _ids(f: CallFilter, after: bool = False) -> str:
    if f.involving is None:
        return f"SELECT call_id, started_at FROM calls WHERE {_where(f, after)}"
    # Two index ranges (calls_counted_for, calls_dialled) merged: an OR would scan the period.
    return " UNION ".join(f"SELECT call_id, started_at FROM calls WHERE {_where(f, after, who)}"
                          for who in ("counted_for", "extension"))


def picked_sql(f: CallFilter, after: bool = False) -> str:
    """The ids of one page (:limit rows from :offset) or of one batch after a cursor."""
    order = "DESC" if f.newest_first else "ASC"
    return (f"SELECT call_id, started_at FROM ({_ids(f, after)}) AS found "
            f"ORDER BY started_at {order}, call_id {order} LIMIT :limit OFFSET :offset")


def page_sql(f: CallFilter, after: bool = False) -> tuple[str, str]:
    """The calls and their legs of one page or batch, in the page's order."""
    order = "DESC" if f.newest_first else "ASC"
    picked = picked_sql(f, after)
    calls = (f"SELECT {', '.join('calls.' + c for c in CALL_COLUMNS)} FROM ({picked}) AS p "
             f"JOIN calls ON calls.call_id = p.call_id ORDER BY p.started_at {order}, p.call_id {order}")
    legs = (f"SELECT {', '.join('legs.' + c for c in LEG_COLUMNS)} FROM ({picked}) AS p "
            f"JOIN legs ON legs.call_id = p.call_id ORDER BY legs.call_id, legs.leg")
    return calls, legs


def count_sql(f: CallFilter) -> str:
    """How many calls the filter keeps, counted up to :cap: a count never reads a whole year."""
    return f"SELECT count(*) AS n FROM (SELECT 1 FROM ({_ids(f)}) AS found LIMIT :cap) AS capped"


def filter_params(f: CallFilter, time, limit: int = 0, offset: int = 0, cap: int = 0,
                  after: tuple[datetime, str] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"start": time(f.start), "end": time(f.end), "limit": limit, "offset": offset, "cap": cap}
    if f.involving is not None:
        params["who"] = f.involving
    if f.counted_for is not None:
        params["counted_for"] = f.counted_for
    if after is not None:
        params["after_at"], params["after_id"] = time(after[0]), after[1]
    return params


# The summary of calls a batch of events touched, written back in the same transaction.
SELECT_TOUCHED_CALLS = f"SELECT {', '.join(CALL_COLUMNS)} FROM calls WHERE call_id = :call_id"
SELECT_TOUCHED_LEGS = f"SELECT {', '.join(LEG_COLUMNS)} FROM legs WHERE call_id = :call_id ORDER BY leg"
# The same in one read each, for PostgreSQL (:ids a list): a round trip per call would add up.
SELECT_TOUCHED_CALLS_ANY = f"SELECT {', '.join(CALL_COLUMNS)} FROM calls WHERE call_id = ANY(:ids)"
SELECT_TOUCHED_LEGS_ANY = f"SELECT {', '.join(LEG_COLUMNS)} FROM legs WHERE call_id = ANY(:ids) ORDER BY call_id, leg"
UPDATE_SUMMARY = """UPDATE calls SET counted_for = :counted_for, status = :status, label = :label
    WHERE call_id = :call_id"""


def summary(call: CallRecord) -> dict[str, Any]:
    """The history row's filterable facts (rows.py decides them), as UPDATE_SUMMARY's parameters."""
    row = history_row(call)
    return {"call_id": call.call_id, "counted_for": row.employee or None, "status": row.status, "label": row.label}


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

    async def page(self, f: CallFilter, limit: int, offset: int = 0) -> list[CallRecord]:
        """One page of the calls the filter keeps, in its order."""
        ...

    async def count(self, f: CallFilter, cap: int) -> tuple[int, int]:
        """(calls, missed calls) the filter keeps, each counted up to ``cap``."""
        ...

    def batches(self, f: CallFilter, size: int) -> AsyncIterator[list[CallRecord]]:
        """Every call the filter keeps, ``size`` at a time (keyset: each batch a short query)."""
        ...

    async def prune(self, before: datetime, batch: int) -> int:
        """Removes up to ``batch`` calls started before ``before`` with their legs, notices and
        callback requests, in one short transaction; how many calls went."""
        ...

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


# Retention: the oldest calls before a day, a batch at a time; each statement names the same
# batch (the calls go last). Notices and callback requests live in the same database and name
# their call: they go with it, where those tables exist.
PRUNE_BATCH = "SELECT call_id FROM calls WHERE started_at < :before ORDER BY started_at, call_id LIMIT :batch"
PRUNE_WITH_CALL = {"legs": "call_id", "notices": "call_id", "notice_calls": "call_id", "callback_requests": "id"}


def prune_sql(tables: Sequence[str]) -> list[str]:
    """The deletes of one batch, for the tables the database has (calls last)."""
    return [f"DELETE FROM {t} WHERE {PRUNE_WITH_CALL[t]} IN ({PRUNE_BATCH})" for t in PRUNE_WITH_CALL if t in tables] + [
        f"DELETE FROM calls WHERE call_id IN ({PRUNE_BATCH})"]
