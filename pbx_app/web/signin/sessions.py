"""Server-side sessions of signed-in users, in the accounts' database (users/database.py): they
survive a restart of the web process, and every web process behind one address knows them. The
cookie holds only a random id; the table keeps its SHA-256 (a copy of the database signs nobody
in), the user, their credential stamp and the CSRF token.

No session exists before sign-in (the sign-in form has a signed cookie instead, formtoken.py),
so anonymous traffic cannot push anyone out. Each user keeps at most ``per_user`` sessions:
signing in once more ends their oldest, never someone else's. A session ends when idle for
``idle`` seconds, ``max_age`` after sign-in whatever happens, and at its next request once the
user's credential stamp changed (a new password, a role, disabled: users/store.py) or the user
is gone, whichever process made the change.

Blocking (the database): the page calls it from worker threads."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Callable

from ...users import AccountsDatabase

COOKIE = "pbx_session"
IDLE_SECONDS = 8 * 3600  # idle this long and you sign in again
MAX_AGE_SECONDS = 7 * 86400  # and a week after signing in, whatever happens
PER_USER = 10  # browsers one user may be signed in on at once
TOUCH_EVERY = 60.0  # a request writes "seen" at most once a minute: reads stay reads
MAX_ID = 100


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass
class Session:
    id: str
    csrf: str
    user: str
    stamp: str  # the user's credential stamp when they signed in
    seen: float = 0.0
    created: float = 0.0


class SessionStore:
    def __init__(self, db: AccountsDatabase, idle: float = IDLE_SECONDS, clock: Callable[[], float] = time.time,
                 per_user: int = PER_USER, max_age: float = MAX_AGE_SECONDS):
        self.db = db
        self.idle = idle
        self.clock = clock
        self.per_user = per_user
        self.max_age = max_age

    def new(self, user: str, stamp: str) -> Session:
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), user, stamp, now, now)
        with self.db.transaction() as run:
            run("DELETE FROM web_sessions WHERE seen < :idle OR created < :old",
                {"idle": now - self.idle, "old": now - self.max_age})
            mine = run("SELECT id_hash FROM web_sessions WHERE user_name = :user ORDER BY seen", {"user": user})
            for old in mine[: max(0, len(mine) - self.per_user + 1)]:
                run("DELETE FROM web_sessions WHERE id_hash = :id", {"id": old["id_hash"]})
            run("INSERT INTO web_sessions (id_hash, csrf, user_name, stamp, created, seen) "
                "VALUES (:id, :csrf, :user, :stamp, :now, :now)",
                {"id": _digest(session.id), "csrf": session.csrf, "user": user, "stamp": stamp, "now": now})
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > MAX_ID:
            return None
        key = _digest(session_id)
        rows = self.db.rows("SELECT csrf, user_name, stamp, created, seen FROM web_sessions WHERE id_hash = :id", {"id": key})
        if not rows:
            return None
        row, now = rows[0], self.clock()
        if now - row["seen"] > self.idle or now - row["created"] > self.max_age:
            self.db.rows("DELETE FROM web_sessions WHERE id_hash = :id RETURNING id_hash", {"id": key})
            return None
        if now - row["seen"] > min(TOUCH_EVERY, self.idle / 4):
            self.db.rows("UPDATE web_sessions SET seen = :now WHERE id_hash = :id RETURNING id_hash", {"id": key, "now": now})
        return Session(session_id, row["csrf"], row["user_name"], row["stamp"], now, row["created"])

    def drop(self, session_id: str | None) -> None:
        if session_id and len(session_id) <= MAX_ID:
            self.db.rows("DELETE FROM web_sessions WHERE id_hash = :id RETURNING id_hash", {"id": _digest(session_id)})

    def keep_only(self, session: Session, stamp: str) -> int:
        """After the user changed their own password: this session goes on under the new stamp,
        every other one of theirs ends. The number ended."""
        with self.db.transaction() as run:
            ended = run("DELETE FROM web_sessions WHERE user_name = :user AND id_hash <> :id RETURNING id_hash",
                        {"user": session.user, "id": _digest(session.id)})
            run("UPDATE web_sessions SET stamp = :stamp WHERE id_hash = :id", {"id": _digest(session.id), "stamp": stamp})
        session.stamp = stamp
        return len(ended)

    def of(self, user: str) -> int:
        return int(self.db.rows("SELECT count(*) AS n FROM web_sessions WHERE user_name = :user", {"user": user})[0]["n"])

    def __len__(self) -> int:
        return int(self.db.rows("SELECT count(*) AS n FROM web_sessions")[0]["n"])
