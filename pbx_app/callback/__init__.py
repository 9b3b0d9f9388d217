"""Callbacks: a client who pressed 1 during the offer is called back when the employee is free.
The request lives in the journal's database (requests.py); an engine's CallbackService serves
the requests (service.py); the dialplan (pbx-callback) rings the employee, asks them to press 1,
and calls the client."""

from __future__ import annotations

from .postgres_requests import PostgresCallbacks
from .requests import CallbackRequest, CallbackStore
from .sqlite_requests import SqliteCallbacks


def open_callbacks(url: str) -> CallbackStore:
    """The request store in the database PBX_DATABASE_URL names (connects on first use)."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        return SqliteCallbacks(url)
    if scheme in ("postgresql", "postgres"):
        return PostgresCallbacks(url)
    raise ValueError(f"PBX_DATABASE_URL={url!r}: use sqlite:////path/journal.db or postgresql://user@host:port/db")


__all__ = ["CallbackRequest", "CallbackStore", "open_callbacks"]
