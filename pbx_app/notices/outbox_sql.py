"""The outbox's tables and statements, beside the journal's in the same database (SQLite or
PostgreSQL; :name placeholders, `{lock}` is FOR UPDATE SKIP LOCKED in PostgreSQL).

notices: one row per (call, kind, recipient) — the primary key is why a notice is never made
twice, whichever notifier or engine saw the call. Its journal: state pending → sent (sent_at),
or failed (attempts, last_error, next_at: retried) → … → sent or given_up. A sender takes rows
with a lease (lease_owner, lease_until): another sender takes a row only once its lease ran out.
notice_calls: the finished calls already turned into notices (or found to need none)."""

from __future__ import annotations

from ..db.schema_versions import Component
from ..history.store import CALL_COLUMNS, LEG_COLUMNS

OPEN_STATES = "('pending', 'failed')"


def schema(time_type: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS notices (
    call_id text NOT NULL,
    kind text NOT NULL,             -- missed, voicemail
    recipient text NOT NULL,        -- an e-mail address, or 'webhook'
    language text NOT NULL,
    facts text NOT NULL,            -- JSON: what the notice says
    state text NOT NULL,            -- pending, failed (will be retried), sent, given_up
    created_at {time_type} NOT NULL,
    next_at {time_type} NOT NULL,   -- not tried before this
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    sent_at {time_type},
    lease_owner text,
    lease_until {time_type},
    PRIMARY KEY (call_id, kind, recipient)
);
CREATE INDEX IF NOT EXISTS notices_due ON notices (next_at) WHERE state IN {OPEN_STATES};
CREATE INDEX IF NOT EXISTS notices_created ON notices (created_at);
CREATE TABLE IF NOT EXISTS notice_calls (
    call_id text PRIMARY KEY,
    seen_at {time_type} NOT NULL,
    notices integer NOT NULL
);
CREATE INDEX IF NOT EXISTS notice_calls_seen ON notice_calls (seen_at);
CREATE TABLE IF NOT EXISTS notice_settings (
    name text PRIMARY KEY,
    value text NOT NULL
);
"""


# Versioned with the journal's tables (pbx_app/db/schema_versions.py); version 1 is the
# release of 2026-12-07's tables.
NOTICES = Component(name="notices", first_table="notices", create=schema)

# The first notifier's start: calls before it are never told of (no flood of old calls).
ENABLE = """INSERT INTO notice_settings (name, value) VALUES ('enabled_since', :now)
            ON CONFLICT (name) DO NOTHING"""
ENABLED_SINCE = "SELECT value FROM notice_settings WHERE name = 'enabled_since'"

_UNSEEN = """calls.started_at >= :lo AND calls.started_at < :hi AND calls.ended_at IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM notice_calls n WHERE n.call_id = calls.call_id)"""
UNSEEN_CALLS = f"""SELECT {", ".join(CALL_COLUMNS)} FROM calls WHERE {_UNSEEN}
    ORDER BY calls.started_at, calls.call_id LIMIT :limit"""
UNSEEN_LEGS = f"""SELECT {", ".join(LEG_COLUMNS)} FROM legs WHERE legs.call_id IN (
    SELECT calls.call_id FROM calls WHERE {_UNSEEN} ORDER BY calls.started_at, calls.call_id LIMIT :limit)
    ORDER BY legs.call_id, legs.leg"""
# The calls_open index answers this: the cursor never passes a call still in progress.
OLDEST_OPEN = "SELECT MIN(started_at) AS oldest FROM calls WHERE ended_at IS NULL AND started_at >= :lo"

ADD_NOTICE = """INSERT INTO notices (call_id, kind, recipient, language, facts, state, created_at, next_at, attempts)
    VALUES (:call_id, :kind, :recipient, :language, :facts, 'pending', :now, :now, 0)
    ON CONFLICT (call_id, kind, recipient) DO NOTHING"""
SEEN_CALL = """INSERT INTO notice_calls (call_id, seen_at, notices) VALUES (:call_id, :now, :notices)
    ON CONFLICT (call_id) DO NOTHING"""

_DUE = f"state IN {OPEN_STATES} AND next_at <= :now AND (lease_until IS NULL OR lease_until < :now)"
# The due rows are picked once (MATERIALIZED: a subquery under IN may be run again per row, and
# with SKIP LOCKED each run picks other rows, past the limit). The condition is checked again on
# the row being updated: PostgreSQL re-reads a row another sender changed meanwhile, so a row
# leased by someone else in between is not taken.
CLAIM = f"""WITH due AS MATERIALIZED (
        SELECT call_id, kind, recipient FROM notices WHERE {_DUE} ORDER BY next_at LIMIT :limit {{lock}})
    UPDATE notices SET lease_owner = :owner, lease_until = :until FROM due
    WHERE notices.call_id = due.call_id AND notices.kind = due.kind AND notices.recipient = due.recipient AND {_DUE}
    RETURNING notices.call_id, notices.kind, notices.recipient, language, facts, attempts, created_at"""
_MINE = "call_id = :call_id AND kind = :kind AND recipient = :recipient AND lease_owner = :owner"
SENT = f"""UPDATE notices SET state = 'sent', sent_at = :now, attempts = attempts + 1, last_error = NULL,
    lease_owner = NULL, lease_until = NULL WHERE {_MINE}"""
FAILED = f"""UPDATE notices SET state = :state, attempts = attempts + 1, last_error = :reason, next_at = :next_at,
    lease_owner = NULL, lease_until = NULL WHERE {_MINE}"""
# Not tried (its channel is away, or the sender stops): back to the queue, no attempt counted.
POSTPONE = f"UPDATE notices SET next_at = :next_at, lease_owner = NULL, lease_until = NULL WHERE {_MINE}"

PRUNE_NOTICES = "DELETE FROM notices WHERE created_at < :before AND state IN ('sent', 'given_up')"
PRUNE_SEEN = "DELETE FROM notice_calls WHERE seen_at < :before"
