"""Calls out, counted per hour in the journal's database (table outbound_calls), so that every
engine on every host sees the same counts. A count and the record of the call it lets through
are one transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock on the site), so two
engines cannot both take the last call of an hour.

What counts: a callback counts when it is requested (the request reserves its first call to the
client) and each later attempt when it is dialled; a forward to an outside number when it is
dialled. The SQL is shared by SQLite and PostgreSQL, as in history/store.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from ..db.schema_versions import Component

Limit = Literal["number_limit", "employee_limit", "site_limit"]
WINDOW = timedelta(hours=1)
KEEP = 2 * WINDOW  # rows older than this are pruned: they no longer count
SITE_LIMIT_TOLD = "site_limit"  # outbound_alerts row: when administrators were last told


@dataclass(frozen=True)
class Quota:
    number: int
    employee: int
    site: int


@dataclass(frozen=True)
class OutboundCall:
    number: str  # digits
    employee: str  # for whom (whose callback, whose forward)
    purpose: str  # "callback", "forward"
    ref: str  # the call id it belongs to


def schema(time_type: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS outbound_calls (
    at {time_type} NOT NULL,
    number text NOT NULL,
    employee text NOT NULL,
    purpose text NOT NULL,
    ref text NOT NULL
);
CREATE INDEX IF NOT EXISTS outbound_calls_at ON outbound_calls (at);
CREATE INDEX IF NOT EXISTS outbound_calls_number ON outbound_calls (number, at);
CREATE INDEX IF NOT EXISTS outbound_calls_employee ON outbound_calls (employee, at);
CREATE TABLE IF NOT EXISTS outbound_alerts (
    name text PRIMARY KEY,
    told_at {time_type} NOT NULL
);
"""


# Versioned with the journal's tables (pbx_app/db/schema_versions.py).
OUTBOUND = Component(name="outbound", first_table="outbound_calls", create=schema)


COUNTS = """
    SELECT (SELECT count(*) FROM outbound_calls WHERE number = :number AND at > :since) AS number,
           (SELECT count(*) FROM outbound_calls WHERE employee = :employee AND at > :since) AS employee,
           (SELECT count(*) FROM outbound_calls WHERE at > :since) AS site"""
RECORD = "INSERT INTO outbound_calls (at, number, employee, purpose, ref) VALUES (:now, :number, :employee, :purpose, :ref)"
PRUNE = "DELETE FROM outbound_calls WHERE at < :before"
# Administrators are told of the site limit at most once an hour, however many engines hit it.
ALERT_ROW = "INSERT INTO outbound_alerts (name, told_at) VALUES (:name, :never) ON CONFLICT (name) DO NOTHING"
ALERT = "UPDATE outbound_alerts SET told_at = :now WHERE name = :name AND told_at <= :since"


def over(counts: dict, quota: Quota, spare: int = 0) -> Limit | None:
    """The first limit the counts reach (``spare``: calls already counted that are this one's own
    reservation, so they do not stop it). The site's first: it is what administrators hear of."""
    if counts["site"] - spare >= quota.site:
        return "site_limit"
    if counts["employee"] - spare >= quota.employee:
        return "employee_limit"
    if counts["number"] - spare >= quota.number:
        return "number_limit"
    return None


class OutboundLimits(Protocol):
    async def take(self, call: OutboundCall, quota: Quota, now: datetime, record: bool = True,
                   spare: int = 0) -> Limit | None:
        """None and (when ``record``) the call counted, or the limit it would pass (nothing counted)."""

    async def first_to_tell(self, name: str, now: datetime, every: timedelta) -> bool:
        """True for exactly one caller per ``every`` across all engines: that one tells."""

    async def close(self) -> None: ...
