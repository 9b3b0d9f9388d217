"""One-time links: an invitation to a new account, or a password reset an administrator made.
The link carries a random token; the database keeps only its SHA-256, so a copy of the database
opens no account. A link works once, until it expires, and a newer link for the same account
replaces it. Using it sets the password and makes a new credential stamp in one transaction."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Callable, Literal

from argon2 import PasswordHasher

from .database import AccountsDatabase
from .names import UserError
from .store import check_password, new_stamp

Kind = Literal["invite", "reset"]
INVITE_HOURS = 72.0
MAX_TOKEN = 100
_hasher = PasswordHasher()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Link:
    token: str  # only here, once: shown to the administrator, e-mailed, never stored
    user: str
    kind: Kind
    expires: float  # time.time()


class Links:
    """Blocking: call it from a worker thread in async code."""

    def __init__(self, db: AccountsDatabase, hours: float = INVITE_HOURS, clock: Callable[[], float] = time.time):
        self.db = db
        self.hours = hours
        self.clock = clock

    def issue(self, user: str, kind: Kind, made_by: str) -> Link:
        token = secrets.token_urlsafe(32)
        expires = self.clock() + self.hours * 3600
        with self.db.transaction() as run:
            if not run("SELECT name FROM users WHERE name = :name", {"name": user}):
                raise UserError(f"no user '{user}'")
            run("DELETE FROM account_links WHERE user_name = :name OR expires < :now", {"name": user, "now": self.clock()})
            run("INSERT INTO account_links (token_hash, user_name, kind, made_by, expires) VALUES (:hash, :name, :kind, :by, :expires)",
                {"hash": _digest(token), "name": user, "kind": kind, "by": made_by, "expires": expires})
        return Link(token, user, kind, expires)

    def peek(self, token: str) -> Link | None:
        """The link's account while the token is good (for the form that sets the password)."""
        if not token or len(token) > MAX_TOKEN:
            return None
        rows = self.db.rows("SELECT user_name, kind, expires FROM account_links WHERE token_hash = :hash",
                            {"hash": _digest(token)})
        if not rows or rows[0]["expires"] < self.clock():
            return None
        return Link("", rows[0]["user_name"], rows[0]["kind"], rows[0]["expires"])

    def redeem(self, token: str, password: str) -> str:
        """Sets the account's password and spends the link; the user's name. UserError when the
        link is unknown, used or expired, or the password does not do."""
        check_password(password)
        if not token or len(token) > MAX_TOKEN:
            raise UserError("this link is not valid (used, replaced by a newer one, or expired)")
        hashed = _hasher.hash(password)  # before the transaction: argon2 must not hold the write lock
        with self.db.transaction() as run:
            rows = run("DELETE FROM account_links WHERE token_hash = :hash RETURNING user_name, expires", {"hash": _digest(token)})
            if not rows or rows[0]["expires"] < self.clock():
                raise UserError("this link is not valid (used, replaced by a newer one, or expired)")
            name = rows[0]["user_name"]
            if not run("UPDATE users SET password_hash = :hash, stamp = :stamp, changed_at = :at "
                       "WHERE name = :name AND source = 'local' RETURNING name",
                       {"hash": hashed, "stamp": new_stamp(), "at": self.clock(), "name": name}):
                raise UserError("this link's account no longer exists")
            run("DELETE FROM web_sessions WHERE user_name = :name", {"name": name})
        return name
