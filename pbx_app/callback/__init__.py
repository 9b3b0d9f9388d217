"""Callbacks: a client who pressed 1 during the offer is called back when the employee is free.
The request lives in the journal's database (requests.py); an engine's CallbackService serves
the requests (service.py); the dialplan (pbx-callback) rings the employee, asks them to press 1,
and calls the client."""

from __future__ import annotations

from .. import db
from .postgres_requests import PostgresCallbacks
from .requests import CallbackRequest, CallbackStore
from .sqlite_requests import SqliteCallbacks


def open_callbacks(url: str) -> CallbackStore:
    """The request store in the database PBX_DATABASE_URL names (connects on first use)."""
    return db.open(url, SqliteCallbacks, PostgresCallbacks)


__all__ = ["CallbackRequest", "CallbackStore", "open_callbacks"]
