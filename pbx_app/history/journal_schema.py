"""The journal's tables as a versioned component (db/schema_versions.py):

  1  the release of 2026-12-07: calls, legs, journal_spools
  2  each call keeps its history row's summary (counted_for, status, label) so the page filters,
     counts and pages in the database; indexes for those filters; calls_started_at gives way to
     calls_newest (started_at, call_id), the page's order"""

from __future__ import annotations

from ..db.schema_versions import Component, Db, sql_step
from .store import CALL_COLUMNS, LEG_COLUMNS, UPDATE_SUMMARY, records, schema, summary

BACKFILL_BATCH = 2000


def backfill_summaries(db: Db) -> None:
    """Every call's summary, a batch at a time (the same rules as a new call's: rows.py)."""
    last = ""
    while True:
        calls = db.fetch(f"SELECT {', '.join(CALL_COLUMNS)} FROM calls WHERE call_id > :last ORDER BY call_id "
                         f"LIMIT {BACKFILL_BATCH}", {"last": last})
        if not calls:
            return
        last = calls[-1]["call_id"]
        legs = db.fetch(f"SELECT {', '.join(LEG_COLUMNS)} FROM legs WHERE call_id >= :first AND call_id <= :last "
                        "ORDER BY call_id, leg", {"first": calls[0]["call_id"], "last": last})
        db.executemany(UPDATE_SUMMARY, [summary(c) for c in records(calls, legs, db.read_time)])


JOURNAL = Component(
    name="journal",
    first_table="calls",
    create=schema,
    migrations={
        2: [sql_step("ALTER TABLE calls ADD COLUMN counted_for text"),
            sql_step("ALTER TABLE calls ADD COLUMN status text"),
            sql_step("ALTER TABLE calls ADD COLUMN label text"),
            backfill_summaries,
            sql_step("DROP INDEX IF EXISTS calls_started_at")],
    },
)
