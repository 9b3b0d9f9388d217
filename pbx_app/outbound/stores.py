"""The limits' store in the database PBX_DATABASE_URL names (the journal's and the callback
requests'), so every engine counts the same calls."""

from __future__ import annotations

from .. import db
from .limits import OutboundLimits
from .postgres_limits import PostgresLimits
from .sqlite_limits import SqliteLimits


def open_limits(url: str) -> OutboundLimits:
    return db.open(url, SqliteLimits, PostgresLimits)
