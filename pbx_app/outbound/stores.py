"""The limits' store in the database PBX_DATABASE_URL names (the journal's and the callback
requests'), so every engine counts the same calls."""

from __future__ import annotations

from .limits import OutboundLimits
from .postgres_limits import PostgresLimits
from .sqlite_limits import SqliteLimits


def open_limits(url: str) -> OutboundLimits:
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        return SqliteLimits(url)
    if scheme in ("postgresql", "postgres"):
        return PostgresLimits(url)
    raise ValueError(f"PBX_DATABASE_URL={url!r}: use sqlite:////path/journal.db or postgresql://user@host:port/db")
