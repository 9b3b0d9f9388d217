"""Server-side sessions: the cookie holds only a random id; who is signed in and the CSRF
token stay in memory here. A restart signs everyone out, which is acceptable for a settings page.
Signing in always starts a new session, so an id planted before sign-in is worth nothing."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Callable

COOKIE = "pbx_session"
IDLE_SECONDS = 8 * 3600  # signed in: idle this long and you sign in again
ANONYMOUS_IDLE_SECONDS = 3600  # the login form's session
MAX_SESSIONS = 10_000  # past this the least recently used sessions are dropped


@dataclass
class Session:
    id: str
    csrf: str
    user: str | None
    seen: float = field(default=0.0)


class SessionStore:
    def __init__(self, idle: float = IDLE_SECONDS, clock: Callable[[], float] = time.monotonic,
                 max_sessions: int = MAX_SESSIONS):
        self.idle = idle
        self.clock = clock
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}

    def new(self, user: str | None = None) -> Session:
        self._evict()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), user, self.clock())
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        session = self._sessions.get(session_id or "")
        if session is None:
            return None
        limit = self.idle if session.user else min(self.idle, ANONYMOUS_IDLE_SECONDS)
        if self.clock() - session.seen > limit:
            del self._sessions[session.id]
            return None
        session.seen = self.clock()
        return session

    def drop(self, session_id: str | None) -> None:
        self._sessions.pop(session_id or "", None)

    def drop_user(self, user: str) -> None:
        for sid in [s.id for s in self._sessions.values() if s.user == user]:
            del self._sessions[sid]

    def _evict(self) -> None:
        if len(self._sessions) < self.max_sessions:
            return
        by_age = sorted(self._sessions.values(), key=lambda s: s.seen)
        for session in by_age[: len(by_age) - self.max_sessions + 1]:
            del self._sessions[session.id]
