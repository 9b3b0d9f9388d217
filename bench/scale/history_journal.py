"""Generates a call journal for the history bench: N calls spread evenly over DAYS days ending
now, in the tables of whatever pbx_app is on sys.path (the app's own store creates them first,
so the same script fills the schema of an older checkout and of this one).

    bench/scale/history_journal.py --calls 1000000 --days 92 sqlite:////tmp/journal-1m.db
    bench/scale/history_journal.py --calls 100000 postgresql://pbx@127.0.0.1:5432/bench

Shapes (whom the call counts for, what the page shows), each a fixed share of the calls:
answered at once; not answered, forwarded to a colleague who answers; not answered, voicemail
with a message; not answered, dropped; the caller hung up while it rang. 10,000 employees
(extensions 10000-19999), 500 departments. One transaction; executemany (SQLite) or COPY
(PostgreSQL): a million calls in well under a minute."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2]))  # after PYTHONPATH: it may name another checkout

from pbx_app.history.database import open_store  # noqa: E402

EMPLOYEES = 10_000
FIRST_EXT = 10_000
SHAPES = (  # (share, shape)
    (0.55, "answered"), (0.15, "forwarded"), (0.10, "voicemail"), (0.15, "dropped"), (0.05, "hung_up"),
)


def shape_of(r: float) -> str:
    for share, shape in SHAPES:
        if r < share:
            return shape
        r -= share
    return SHAPES[-1][1]


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def rows(calls: int, days: float, now: datetime, seed: int = 7):
    """(call row, leg rows, summary) per call, oldest first. Times as datetimes."""
    rng = random.Random(seed)
    start = now - timedelta(days=days)
    step = days * 86400 / calls
    for n in range(calls):
        at = start + timedelta(seconds=n * step)
        ext = str(FIRST_EXT + rng.randrange(EMPLOYEES))
        mate = str(FIRST_EXT + rng.randrange(EMPLOYEES))
        call_id = f"b{n:08d}"
        caller = f"7900{rng.randrange(10**7):07d}"
        shape = shape_of(rng.random())
        t = lambda s: at + timedelta(seconds=s)  # noqa: E731
        legs = []
        if shape == "answered":
            legs.append((1, "employee", [ext], None, t(0), t(60), "answered", ext, t(5), None))
            result, detail, ended, summary = "answered", f"answered by {ext}", t(60), (ext, "answered", None)
        elif shape == "forwarded":
            legs.append((1, "employee", [ext], None, t(0), t(20), "no_answer", None, None, "19"))
            legs.append((2, "forward", [mate], None, t(20), t(90), "answered", mate, t(25), None))
            result, detail, ended, summary = "answered", f"answered by {mate}", t(90), (mate, "answered", None)
        elif shape == "voicemail":
            legs.append((1, "employee", [ext], None, t(0), t(20), "no_answer", None, None, "19"))
            legs.append((2, "voicemail", [ext], None, t(20), t(50), "message_left", None, None, None))
            result, detail, ended, summary = "voicemail", "message left", t(51), (ext, "missed", "Voicemail")
        elif shape == "dropped":
            legs.append((1, "employee", [ext], None, t(0), t(20), "no_answer", None, None, "19"))
            result, detail, ended, summary = "dropped", "busy", t(21), (ext, "missed", None)
        else:
            legs.append((1, "employee", [ext], None, t(0), t(8), "caller_hung_up", None, None, "16"))
            result, detail, ended, summary = "caller_hung_up", "", t(8), (ext, "missed", None)
        call = (call_id, at, caller, ext, f"{1700000000 + n}.{n % 1000}", f"PJSIP/trunk-{n:08x}",
                json.dumps(["bench"]), ended, result, detail)
        yield call, [(call_id, *leg[:2], json.dumps(leg[2]), *leg[3:]) for leg in legs], summary


async def create_schema(url: str) -> None:
    store = open_store(url)
    try:
        await store.position("bench")  # the first use creates the tables (and, where the app has them, migrates)
    finally:
        await store.close()


def columns(db, table: str, postgres: bool) -> list[str]:
    if postgres:
        cur = db.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))
        return [r[0] for r in cur.fetchall()]
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})")]


CALL_COLUMNS = ["call_id", "started_at", "caller", "extension", "channel_id", "channel_name", "reasons", "ended_at",
                "result", "detail"]
LEG_COLUMNS = ["call_id", "leg", "role", "targets", "department", "started_at", "ended_at", "outcome", "answered_by",
               "answered_at", "cause"]
SUMMARY_COLUMNS = ["counted_for", "status", "label"]  # this release's summary of each call, when the table has it


def generate(url: str, calls: int, days: float) -> float:
    asyncio.run(create_schema(url))
    postgres = url.startswith("postgres")
    began = time.monotonic()
    now = datetime.now(timezone.utc)
    if postgres:
        import psycopg
        db = psycopg.connect(url)
    else:
        db = sqlite3.connect(url.split(":", 1)[1][3:], isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
    with_summary = set(SUMMARY_COLUMNS) <= set(columns(db, "calls", postgres))
    call_cols = CALL_COLUMNS + (SUMMARY_COLUMNS if with_summary else [])
    time_of = (lambda v: v) if postgres else (lambda v: None if v is None else iso(v))

    def call_rows(batch):
        for call, _, summary in batch:
            row = [*call[:1], time_of(call[1]), *call[2:7], time_of(call[7]), *call[8:]]
            yield row + list(summary) if with_summary else row

    def leg_rows(batch):
        for _, legs, _ in batch:
            for leg in legs:
                yield [*leg[:5], time_of(leg[5]), time_of(leg[6]), leg[7], leg[8], time_of(leg[9]), leg[10]]

    source = rows(calls, days, now)
    if postgres:
        with db.transaction(), db.cursor() as cur:
            while batch := [x for _, x in zip(range(50_000), source)]:
                with cur.copy(f"COPY calls ({', '.join(call_cols)}) FROM STDIN") as copy:
                    for row in call_rows(batch):
                        copy.write_row(row)
                with cur.copy(f"COPY legs ({', '.join(LEG_COLUMNS)}) FROM STDIN") as copy:
                    for row in leg_rows(batch):
                        copy.write_row(row)
        db.execute("ANALYZE calls")
        db.execute("ANALYZE legs")
        db.commit()
    else:
        db.execute("BEGIN")
        marks = ", ".join("?" * len(call_cols))
        while batch := [x for _, x in zip(range(50_000), source)]:
            db.executemany(f"INSERT INTO calls ({', '.join(call_cols)}) VALUES ({marks})", call_rows(batch))
            db.executemany(f"INSERT INTO legs ({', '.join(LEG_COLUMNS)}) VALUES ({', '.join('?' * 11)})", leg_rows(batch))
        db.execute("COMMIT")
        db.execute("ANALYZE")
    db.close()
    return time.monotonic() - began


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url")
    p.add_argument("--calls", type=int, default=100_000)
    p.add_argument("--days", type=float, default=92)
    args = p.parse_args()
    took = generate(args.url, args.calls, args.days)
    print(f"{args.calls} calls over {args.days:g} days into {args.url} in {took:.1f} s")


if __name__ == "__main__":
    main()
