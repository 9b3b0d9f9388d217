"""The sign-in form's CSRF token without a server session: the token is signed with this
process's key and sent both as a cookie and in the form; a sign-in needs the two to match, the
signature to hold and the token to be younger than ``max_age``. Nothing is stored per visitor."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Callable

COOKIE = "pbx_login"
MAX_AGE = 2 * 3600.0
MAX_TOKEN = 200


class FormTokens:
    def __init__(self, key: bytes | None = None, max_age: float = MAX_AGE, clock: Callable[[], float] = time.time):
        self.key = key or secrets.token_bytes(32)
        self.max_age = max_age
        self.clock = clock

    def issue(self) -> str:
        body = f"{int(self.clock())}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._sign(body)}"

    def valid(self, cookie: str | None, field: str | None) -> bool:
        if not cookie or not field or len(cookie) > MAX_TOKEN:
            return False
        if not hmac.compare_digest(cookie.encode("utf-8", "surrogateescape"), field.encode("utf-8", "surrogateescape")):
            return False
        body, _, signature = cookie.rpartition(".")
        issued, _, _ = body.partition(".")
        if not hmac.compare_digest(self._sign(body).encode(), signature.encode("utf-8", "surrogateescape")):
            return False
        return issued.isdigit() and 0 <= self.clock() - int(issued) <= self.max_age

    def _sign(self, body: str) -> str:
        return hmac.new(self.key, body.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()[:32]
