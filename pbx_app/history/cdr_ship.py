"""Each Asterisk node's CDR, kept on the node and shipped to PostgreSQL: what PostgreSQL missed
while it was away arrives when it is back.

Why not cdr_pgsql: it writes each row once, at the end of the leg, and drops it when PostgreSQL
does not answer (it does not queue), so a database outage cost the CDR of every call that ended
during it. Every node already writes each row into its own SQLite file first
(cdr_sqlite3_custom, config/asterisk/cdr_sqlite3_custom.conf: local disk, no network in the way);
this shipper copies that file's new rows into PostgreSQL's ``cdr`` table, the one cdr_pgsql
would fill (config/asterisk/cdr_pgsql.sql), so the reconciler and reports read the same table.

Idempotent, so a crash or two shippers for one node never make a row twice: the rows and how far
this node has been shipped (``cdr_shipped``, by node name) are committed in one transaction, and
a unique index on (uniqueid, sequence) — one CDR row of one Asterisk — lets a row that is there
already be skipped. A node whose SQLite file was started anew (rowids lower than the position) is
shipped again from its first row: the index keeps what was there.

    python -m pbx_app.history.cdr_ship --node a --from /var/log/asterisk/master.db --to postgresql://…
"""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import threading
from datetime import datetime

import psycopg

from .cdr import _time

log = logging.getLogger(__name__)

COLUMNS = ("calldate", "answer", "end", "clid", "src", "dst", "dcontext", "channel", "dstchannel", "lastapp",
           "lastdata", "duration", "billsec", "disposition", "amaflags", "accountcode", "uniqueid", "linkedid",
           "sequence", "userfield")
# cdr_sqlite3_custom's names for the times (the rest are the same).
SQLITE_SELECT = """SELECT rowid, calldate, answerdate, enddate, clid, src, dst, dcontext, channel, dstchannel,
    lastapp, lastdata, duration, billsec, disposition, amaflags, accountcode, uniqueid, linkedid, sequence, userfield
    FROM cdr WHERE rowid > ? ORDER BY rowid LIMIT ?"""
SCHEMA = """CREATE TABLE IF NOT EXISTS cdr_shipped (node text PRIMARY KEY, rowid bigint NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS cdr_one_row ON cdr (uniqueid, sequence);
CREATE INDEX IF NOT EXISTS cdr_fallback ON cdr (calldate) WHERE userfield LIKE '%:fallback%'"""
INSERT = ("INSERT INTO cdr (%s) VALUES (%s) ON CONFLICT (uniqueid, sequence) DO NOTHING"
          % (", ".join('"end"' if c == "end" else c for c in COLUMNS), ", ".join(["%s"] * len(COLUMNS))))


def _value(column: str, value):
    if column in ("calldate", "answer", "end"):
        return _time(value)
    if column in ("duration", "billsec", "sequence"):
        return int(value) if value not in (None, "") else None
    return value


def read_rows(path: str, after: int, limit: int) -> list[tuple]:
    """Rows past ``after`` (a rowid) from the node's SQLite CDR; none while Asterisk has not made it."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
    except sqlite3.OperationalError:
        return []
    try:
        return db.execute(SQLITE_SELECT, (after, limit)).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        db.close()


def newest_rowid(path: str) -> int:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
    except sqlite3.OperationalError:
        return 0
    try:
        return db.execute("SELECT coalesce(max(rowid), 0) FROM cdr").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


class CdrShipper:
    def __init__(self, node: str, source: str, target: str, batch: int = 500, connect=psycopg.connect):
        self.connect = connect
        self.node = node
        self.source = source
        self.target = target
        self.batch = batch
        self.shipped = 0  # rows inserted since start (rows PostgreSQL had already are not counted)

    def ship_once(self, conn: psycopg.Connection) -> int:
        """Ships the next batch; how many rows were read (0: caught up)."""
        with conn.transaction():
            conn.execute("INSERT INTO cdr_shipped (node, rowid) VALUES (%s, 0) ON CONFLICT (node) DO NOTHING",
                         (self.node,))
            [position] = conn.execute("SELECT rowid FROM cdr_shipped WHERE node = %s FOR UPDATE", (self.node,)).fetchone()
            if position and newest_rowid(self.source) < position:
                log.warning("CDR of node %s: %s was started anew; shipping it from its first row", self.node, self.source)
                conn.execute("UPDATE cdr_shipped SET rowid = 0 WHERE node = %s", (self.node,))
                position = 0
            rows = read_rows(self.source, position, self.batch)
            if not rows:
                return 0
            with conn.cursor() as cur:
                cur.executemany(INSERT, [tuple(_value(c, v) for c, v in zip(COLUMNS, row[1:])) for row in rows])
                inserted = cur.rowcount if cur.rowcount >= 0 else 0
            conn.execute("UPDATE cdr_shipped SET rowid = %s WHERE node = %s", (rows[-1][0], self.node))
        self.shipped += inserted
        return len(rows)

    def run(self, stop: threading.Event, interval: float = 0.5, retry_max: float = 5.0) -> None:
        """Ships until ``stop``; a PostgreSQL that does not answer is tried again with backoff, and
        the rows wait on the node meanwhile."""
        wait = interval
        conn: psycopg.Connection | None = None
        down_since: datetime | None = None
        while not stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = self.connect(self.target, connect_timeout=3, autocommit=True)
                    conn.execute(SCHEMA)
                while self.ship_once(conn) and not stop.is_set():
                    pass
                if down_since is not None:
                    log.info("CDR of node %s: PostgreSQL is back; the rows kept on the node are shipped", self.node)
                    down_since = None
                wait = interval
            except (psycopg.Error, OSError) as exc:
                if down_since is None:
                    down_since = datetime.now()
                    log.error("CDR of node %s: cannot ship to PostgreSQL (%s); rows wait on the node, retrying",
                              self.node, exc)
                if conn is not None:
                    conn.close()
                conn = None
                wait = min(retry_max, wait * 2)
            stop.wait(wait)
        if conn is not None:
            conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pbx_app.history.cdr_ship",
                                     description="Ships one Asterisk node's SQLite CDR into PostgreSQL's cdr table.")
    parser.add_argument("--node", required=True, help="the node's name (its systemname), the key of its position")
    parser.add_argument("--from", dest="source", required=True, help="the node's cdr_sqlite3_custom file (master.db)")
    parser.add_argument("--to", dest="target", required=True, help="postgresql://… with the cdr table")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between looks for new rows")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    shipper = CdrShipper(args.node, args.source, args.target)
    log.info("CDR of node %s: shipping %s to PostgreSQL", args.node, args.source)
    shipper.run(stop, args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
