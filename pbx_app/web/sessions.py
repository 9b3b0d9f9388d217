"""Server-side sessions of signed-in users. The cookie holds only a random id; the user, their
credential stamp and the CSRF token stay in memory here (a restart signs everyone out, which is
acceptable for a settings page).

No session exists before sign-in (the sign-in form has a signed cookie instead, formtoken.py),
so anonymous traffic cannot push anyone out. Each user keeps at most ``per_user`` sessions:
signing in once more ends their oldest, never someone else's. A session carries the user's
credential stamp at sign-in (users/store.py); when the stamp in the users file changes — a new
password — or the user is gone, the session ends at its next request, whichever process
(`pbx-app user passwd/remove`) changed the file."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Callable

COOKIE = "pbx_session"
IDLE_SECONDS = 8 * 3600  # idle this long and you sign in again
PER_USER = 10  # browsers one user may be signed in on at once


@dataclass
class Session:
    id: str
    csrf: str
    user: str
    stamp: str  # the user's credential stamp when they signed in
    seen: float = field(default=0.0)


class SessionStore:
    def __init__(self, idle: float = IDLE_SECONDS, clock: Callable[[], float] = time.monotonic,
                 per_user: int = PER_USER):
        self.idle = idle
        self.clock = clock
        self.per_user = per_user
        self._sessions: dict[str, Session] = {}

    def new(self, user: str, stamp: str) -> Session:
        now = self.clock()
        self._expire(now)
        mine = sorted((s for s in self._sessions.values() if s.user == user), key=lambda s: s.seen)
        for old in mine[: max(0, len(mine) - self.per_user + 1)]:
            del self._sessions[old.id]
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), user, stamp, now)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        session = self._sessions.get(session_id or "")
        if session is None:
            return None
        if self.clock() - session.seen > self.idle:
            del self._sessions[session.id]
            return None
        session.seen = self.clock()
        return session

    def drop(self, session_id: str | None) -> None:
        self._sessions.pop(session_id or "", None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _expire(self, now: float) -> None:
        for sid in [s.id for s in self._sessions.values() if now - s.seen > self.idle]:
            del self._sessions[sid]
