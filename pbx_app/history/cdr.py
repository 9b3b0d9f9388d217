"""Asterisk's own CDR, read back: what happened to a call's legs while no engine was watching
(the dialplan carried the plan on, or an engine died mid-call). One URL names where Asterisk
writes it (config/asterisk/cdr_sqlite3_custom.conf or cdr_pgsql):

    sqlite:////var/log/asterisk/master.db        (table cdr, calldate/answerdate/enddate as text)
    postgresql://pbx@127.0.0.1:5432/pbx          (table cdr, calldate/answer/"end" timestamptz)

Unset, the engines read the SQLite CDR where `pbx-app asterisk install` (and the test bed, the
image) have Asterisk write it: a call whose engines died then reads right with no setting at all.
SQLite's times are text in Asterisk's local time zone: they are read in this host's zone, which is
Asterisk's when both run on one machine (set TZ for the engines if they do not)."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from datetime import datetime, timezone
from typing import Protocol

import psycopg
from psycopg.rows import dict_row

from ..db.sqlite_thread import sqlite_path


@dataclass(frozen=True)
class CdrLeg:
    """One CDR row of pbx_app's: ``userfield`` callid:leg:role:who[:fallback[:dialled:history]].
    The last two are on the legs of a call no engine saw (pbx_app/calls/app_down.py): the employee
    the client dialled (the CDR names them nowhere else when the plan skipped their own ring) and
    the id of the journal whose engines wrote the plan (history/unseen_calls.py)."""

    call_id: str
    leg: int
    role: str
    who: str
    fallback: bool
    disposition: str  # ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION
    lastapp: str
    dstchannel: str
    start: datetime | None
    answer: datetime | None
    end: datetime | None
    caller: str = ""  # the CDR's src
    dst: str = ""
    channel: str = ""
    dialled: str = ""
    history: str = ""

    @classmethod
    def parse(cls, row: dict) -> "CdrLeg | None":
        parts = (row.get("userfield") or "").split(":")
        if len(parts) < 4 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2], parts[3], parts[4:5] == ["fallback"],
                   (row.get("disposition") or "").upper(), row.get("lastapp") or "", row.get("dstchannel") or "",
                   _time(row.get("start")), _time(row.get("answer")), _time(row.get("end")),
                   row.get("src") or "", row.get("dst") or "", row.get("channel") or "", ":".join(parts[5:6]), ":".join(parts[6:7]))


def _time(value) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):  # PostgreSQL's timestamptz: aware
        return value if value.tzinfo else value.astimezone(timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    # cdr_sqlite3_custom writes strftime("%Y-%m-%d %T") of the local time: a naive value is local.
    return parsed if parsed.tzinfo else parsed.astimezone(timezone.utc)


class CdrReader(Protocol):
    async def legs(self, linkedid: str) -> list[CdrLeg]: ...

    async def fallback_legs(self, since: datetime) -> list[CdrLeg]:
        """The dialplan's own legs (userfield ``…:fallback``) of calls started since ``since``: at
        least those written since the last look (a reader may return rows again)."""
        ...

    async def close(self) -> None: ...


SQLITE_COLUMNS = ('userfield, disposition, lastapp, dstchannel, calldate AS start, answerdate AS answer, '
                  'enddate AS "end"')
PG_COLUMNS = 'userfield, disposition, lastapp, dstchannel, calldate AS start, answer, "end"'
SQLITE_QUERY = f"SELECT {SQLITE_COLUMNS} FROM cdr WHERE linkedid = ? ORDER BY calldate, sequence"
PG_QUERY = f"SELECT {PG_COLUMNS} FROM cdr WHERE linkedid = %s ORDER BY calldate, sequence"
# The dialplan's own legs. SQLite: rows past the last rowid read (cdr_sqlite3_custom adds rows in
# the order legs end, and has no index on calldate). PostgreSQL: the partial index cdr_fallback
# (config/asterisk/cdr_pgsql.sql) holds these rows alone, and a node's rows may be shipped there
# long after their time (history/cdr_ship.py), so the whole window is read each time.
SQLITE_FALLBACK = (f"SELECT rowid, {SQLITE_COLUMNS}, src, dst, channel FROM cdr WHERE rowid > ? AND rowid <= ? "
                   "AND calldate >= ? AND userfield LIKE '%:fallback%' ORDER BY rowid")
PG_FALLBACK = (f"SELECT {PG_COLUMNS}, src, dst, channel FROM cdr WHERE userfield LIKE '%%:fallback%%' "
               "AND calldate >= %s ORDER BY calldate, sequence")


class SqliteCdr:
    def __init__(self, url: str):
        self.path = sqlite_path(url)
        self._read_to = 0  # the newest rowid fallback_legs has looked at

    async def fallback_legs(self, since: datetime) -> list[CdrLeg]:
        return await asyncio.to_thread(self._fallback_legs, since)

    def _fallback_legs(self, since: datetime) -> list[CdrLeg]:
        local = since.astimezone().strftime("%Y-%m-%d %H:%M:%S")  # calldate is local time, as text
        with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=2)) as db:
            db.row_factory = sqlite3.Row
            newest = db.execute("SELECT coalesce(max(rowid), 0) FROM cdr").fetchone()[0]
            if newest < self._read_to:  # a file started anew: read again from its first row
                self._read_to = 0
            rows = [dict(r) for r in db.execute(SQLITE_FALLBACK, (self._read_to, newest, local))]
        self._read_to = newest
        return [leg for leg in map(CdrLeg.parse, rows) if leg is not None]

    async def legs(self, linkedid: str) -> list[CdrLeg]:
        return await asyncio.to_thread(self._legs, linkedid)

    def _legs(self, linkedid: str) -> list[CdrLeg]:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=2) as db:
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute(SQLITE_QUERY, (linkedid,))]
        return [leg for leg in map(CdrLeg.parse, rows) if leg is not None]

    async def close(self) -> None:
        pass


class PostgresCdr:
    def __init__(self, url: str):
        self.url = url

    async def legs(self, linkedid: str) -> list[CdrLeg]:
        return await self._read(PG_QUERY, linkedid)

    async def fallback_legs(self, since: datetime) -> list[CdrLeg]:
        return await self._read(PG_FALLBACK, since)

    async def _read(self, query: str, param) -> list[CdrLeg]:
        async with await psycopg.AsyncConnection.connect(self.url, connect_timeout=3) as conn:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(query, (param,))
                rows = await cur.fetchall()
        return [leg for leg in map(CdrLeg.parse, rows) if leg is not None]

    async def close(self) -> None:
        pass


# Where Asterisk writes the SQLite CDR when PBX_CDR_URL is unset: pbx-app asterisk install's own
# file beside a site's CDR, else master.db (the test bed's and the image's config/asterisk).
DEFAULT_SQLITE = ("/var/log/asterisk/pbx_app-cdr.db", "/var/log/asterisk/master.db")


class DefaultCdr:
    """The first of the default SQLite files that exists, looked for at each read: Asterisk creates
    it when cdr_sqlite3_custom loads, which may be after the engines start."""

    def __init__(self, paths: tuple[str, ...] = DEFAULT_SQLITE):
        self.paths = paths
        self._readers: dict[str, SqliteCdr] = {}  # each keeps how far fallback_legs has read

    def _reader(self) -> SqliteCdr:
        for path in self.paths:
            if Path(path).exists():
                return self._readers.setdefault(path, SqliteCdr(f"sqlite:///{path}"))
        raise FileNotFoundError(f"no CDR at {' or '.join(self.paths)}: set PBX_CDR_URL")

    async def fallback_legs(self, since: datetime) -> list[CdrLeg]:
        return await self._reader().fallback_legs(since)

    async def legs(self, linkedid: str) -> list[CdrLeg]:
        return await self._reader().legs(linkedid)

    async def close(self) -> None:
        pass


def open_cdr(url: str | None) -> CdrReader:
    if not url:
        return DefaultCdr()
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        return SqliteCdr(url)
    if scheme in ("postgresql", "postgres"):
        return PostgresCdr(url)
    raise ValueError(f"PBX_CDR_URL={url!r}: use sqlite:////var/log/asterisk/master.db or postgresql://user@host/db")
