"""Each node's CDR is kept on the node (cdr_sqlite3_custom's SQLite file) and shipped to a real
PostgreSQL: rows made while PostgreSQL is away arrive when it is back, each exactly once, however
many shippers run or restart (issue 29: "0 CDR rows missing in PostgreSQL afterwards")."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from pbx_app.history.cdr import PostgresCdr
from pbx_app.history.cdr_ship import SCHEMA, CdrShipper
from tests.support.wait import until_sync

REPO = Path(__file__).resolve().parents[2]
# As cdr_sqlite3_custom creates it (config/asterisk/cdr_sqlite3_custom.conf's columns).
TABLE = ("CREATE TABLE cdr (AcctId INTEGER PRIMARY KEY, calldate,answerdate,enddate,clid,src,dst,dcontext,channel,"
         "dstchannel,lastapp,lastdata,duration,billsec,disposition,amaflags,accountcode,uniqueid,linkedid,sequence,"
         "userfield)")


def add_legs(path: Path, first: int, count: int, node: str = "a") -> None:
    """``count`` calls, one ANSWERED leg each, as Asterisk writes them (text, local time)."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS " + TABLE.split("TABLE ", 1)[1])
        for n in range(first, first + count):
            uid = f"{node}-1796655{n:03d}.{n}"
            db.execute("INSERT INTO cdr (calldate,answerdate,enddate,clid,src,dst,dcontext,channel,dstchannel,lastapp,"
                       "lastdata,duration,billsec,disposition,amaflags,accountcode,uniqueid,linkedid,sequence,userfield) "
                       "VALUES ('2026-12-07 14:52:30','2026-12-07 14:52:31','2026-12-07 14:52:33','\"c\" <7900>','7900',"
                       "'101','pbx-ring','PJSIP/client-1','PJSIP/101-1','Dial','PJSIP/101,2,r','3','2','ANSWERED',"
                       "'DOCUMENTATION','',?,?,?,?)", (uid, uid, str(n), f"{uid}:1:employee:101"))
    db.close()


@pytest.fixture
def pg(postgres_server):
    url = postgres_server.new_database("cdr")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((REPO / "config/asterisk/cdr_pgsql.sql").read_text())
    return url


def rows_in(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT uniqueid, sequence, disposition, answer IS NOT NULL FROM cdr ORDER BY sequence").fetchall()


def test_rows_made_while_postgresql_is_away_arrive_once_when_it_is_back(pg, tmp_path):
    source = tmp_path / "master.db"
    add_legs(source, 1, 3)
    away = threading.Event()
    away.set()

    def connect(url, **kw):
        if away.is_set():
            raise psycopg.OperationalError("connection refused (PostgreSQL stopped)")
        return psycopg.connect(url, **kw)

    shipper = CdrShipper("a", str(source), pg, connect=connect)
    stop = threading.Event()
    thread = threading.Thread(target=shipper.run, args=(stop, 0.05, 0.2))
    thread.start()
    try:
        add_legs(source, 4, 5)  # calls that ended during the outage
        assert rows_in(pg) == [], "PostgreSQL was away"
        away.clear()
        until_sync(lambda: len(rows_in(pg)) == 8, 10, "the 8 kept rows shipped")
        add_legs(source, 9, 2)
        until_sync(lambda: len(rows_in(pg)) == 10, 10, "new rows follow")
    finally:
        stop.set()
        thread.join(5)
    rows = rows_in(pg)
    assert [r[1] for r in rows] == list(range(1, 11)) and all(r[2:] == ("ANSWERED", True) for r in rows)
    # A second shipper for the same node (a restart, or two by mistake) adds nothing.
    again = CdrShipper("a", str(source), pg)
    with psycopg.connect(pg, autocommit=True) as conn:
        assert again.ship_once(conn) == 0 and again.shipped == 0
        conn.execute("UPDATE cdr_shipped SET rowid = 0")  # even one that lost its position
        again.ship_once(conn)
    assert again.shipped == 0 and len(rows_in(pg)) == 10, "each row once"


def test_the_shipped_rows_read_back_as_the_reconciler_reads_cdr_pgsqls(pg, tmp_path):
    source = tmp_path / "master.db"
    add_legs(source, 1, 1)
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(SCHEMA)
        assert CdrShipper("a", str(source), pg).ship_once(conn) == 1
    [leg] = asyncio.run(PostgresCdr(pg).legs("a-1796655001.1"))
    assert (leg.call_id, leg.leg, leg.role, leg.who, leg.disposition) == ("a-1796655001.1", 1, "employee", "101", "ANSWERED")
    assert leg.answer is not None and leg.end is not None


def test_a_node_whose_cdr_file_started_anew_is_shipped_from_its_first_row(pg, tmp_path):
    source = tmp_path / "master.db"
    add_legs(source, 1, 5)
    shipper = CdrShipper("b", str(source), pg)
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(SCHEMA)
        while shipper.ship_once(conn):
            pass
        source.unlink()
        add_legs(source, 6, 2, node="b")  # rowids 1, 2 again: below the position
        while shipper.ship_once(conn):
            pass
    assert len(rows_in(pg)) == 7
