"""Who is asking, and may they: sign-in checks, CSRF checks and security headers for the web
feature's handlers (decorators, so other features' routes on the same app are untouched)."""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
from typing import Awaitable, Callable

from aiohttp import web

from ...users import DatabaseError, User, UserError
from ..signin.sessions import COOKIE, Session
from ..state import WEB, Web
from .bodies import BadInput
from .edge import client_address as edge_address

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[web.StreamResponse]]
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"

HEADERS = {
    # No inline script or style anywhere: the page's JS and CSS are static files.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def state(request: web.Request) -> Web:
    return request.app[WEB]


async def current(request: web.Request) -> tuple[Session | None, User | None]:
    """The signed-in session and its user, both read from the database on every request (off
    the event loop): a user removed, disabled, given a new password or role since — by any
    process — is signed out here. A database that cannot be reached lets nobody in."""
    web_ = state(request)
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        return None, None
    try:
        session, user = await asyncio.to_thread(_lookup, web_, session_id)
    except (UserError, DatabaseError) as exc:
        log.error("cannot check a session: %s", exc)
        return None, None
    return session, user


def _lookup(web_: Web, session_id: str) -> tuple[Session | None, User | None]:
    session = web_.sessions.get(session_id)
    if session is None:
        return None, None
    user = web_.users.get(session.user)
    if user is None or user.disabled or not hmac.compare_digest(user.stamp, session.stamp):
        web_.sessions.drop(session.id)
        return None, None
    return session, user


def set_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="Lax", path="/",
                        secure=state(request).config.secure_cookies)


def client_address(request: web.Request) -> str:
    return edge_address(request, state(request).config.trusted_proxies)


def same_origin(request: web.Request) -> bool:
    """A browser sends Origin on state-changing requests; one from another site is refused
    even before the CSRF token is looked at."""
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser, or an old one: the CSRF token still has to match
        return True
    host = request.headers.get("Host", "")
    return origin.split("://", 1)[-1] == host


def token_ok(session: Session | None, token: str | None) -> bool:
    # As bytes: compare_digest refuses str with non-ASCII characters, and a header may have them.
    return (session is not None and bool(token)
            and hmac.compare_digest(session.csrf.encode(), token.encode("utf-8", "surrogateescape")))  # type: ignore[union-attr]


def with_headers(response: web.StreamResponse) -> web.StreamResponse:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def page(handler: Handler) -> Handler:
    """An HTML page for signed-in users; others go to the sign-in form."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        session, user = await current(request)
        if user is None:
            raise with_headers(web.HTTPSeeOther("/login"))
        try:
            return with_headers(await handler(request, session, user))
        except web.HTTPException as exc:
            raise with_headers(exc)

    return wrapper


def api(mutating: bool = False) -> Callable[[Handler], Handler]:
    """A JSON endpoint for signed-in users; a state-changing one also needs the session's CSRF
    token in the X-CSRF-Token header and no foreign Origin."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            session, user = await current(request)
            if user is None:
                return with_headers(error(401, "not signed in", "unauthenticated"))
            wait = state(request).api_rate.take(user.name)
            if wait:
                return with_headers(error(429, "too many requests: slow down", "rate", retry_after=wait))
            if mutating and not (same_origin(request) and token_ok(session, request.headers.get(CSRF_HEADER))):
                return with_headers(error(403, "the request did not come from this page (CSRF check failed): reload the page", "csrf"))
            try:
                return with_headers(await handler(request, session, user))
            except BadInput as exc:
                return with_headers(error(exc.status, exc.message, exc.code))
            except web.HTTPException as exc:
                raise with_headers(exc)

        return wrapper

    return decorate


def error(status: int, message: str, code: str, retry_after: float | None = None, **extra) -> web.Response:
    response = web.json_response({"error": message, "code": code, **extra}, status=status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
    return response
