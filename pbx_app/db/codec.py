"""Times in the database, as SQLite keeps them: UTC ISO strings, always with microseconds, so
they sort as the times they stand for. PostgreSQL keeps timestamptz and needs none of this."""

from __future__ import annotations

from datetime import datetime, timezone


class BadTime(ValueError):
    """A stored or spooled time that is not one."""


def _iso(value: datetime) -> str:
    if value.tzinfo is None:  # the flow's clock is UTC; never guess another zone
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def iso(value: datetime | None) -> str | None:
    """UTC, always with microseconds: such strings sort as the times they stand for."""
    return None if value is None else _iso(value)


def parse_time(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise BadTime(f"bad time {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def read_time(value: str | datetime | None) -> datetime | None:
    return None if value is None else parse_time(value)
