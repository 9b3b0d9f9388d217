"""Which language a request is answered in, and the header's switch that changes it: kept with
the user record when signed in (every browser of theirs follows), in a cookie before sign-in."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ...i18n import LANGUAGES
from ...users import DatabaseError, User, UserError
from ..http.bodies import BadInput, read_form
from ..http.guard import CSRF_FIELD, current, same_origin, state, token_ok, with_headers
from ..settings.policy_file import PolicyBroken
from .texts import COOKIE, Texts, chosen, site_zone

log = logging.getLogger(__name__)
MAX_NEXT = 512
COOKIE_DAYS = 365


def add_routes(webapp: web.Application) -> None:
    webapp.router.add_post("/language", switch)


def language_of(request: web.Request, user: User | None) -> str:
    return chosen(user.language if user else None, request.cookies.get(COOKIE), request.headers.get("Accept-Language"))


async def texts_for(request: web.Request, user: User | None) -> Texts:
    """The reader's language, with dates and times in the site's time zone (the policy's)."""
    zone = None
    if user is not None:  # the policy is read for signed-in users only: the sign-in form stays cheap
        try:
            zone = (await state(request).snapshot()).policy.site.timezone
        except PolicyBroken:
            pass
    return Texts(language_of(request, user), site_zone(zone))


def local_path(text: str | None) -> str:
    """Where to go back to: a path on this site, never another site ('//evil', 'https://...')."""
    if (not text or len(text) > MAX_NEXT or not text.startswith("/") or text.startswith("//") or "\\" in text
            or not (text.isascii() and text.isprintable())):
        return "/"
    return text


async def switch(request: web.Request) -> web.StreamResponse:
    web_ = state(request)
    try:
        form = await read_form(request)
    except BadInput:
        form = {}
    session, user = await current(request)
    language = form.get("lang", "")
    back = local_path(form.get("next"))
    # A foreign page may not change anyone's language; a signed-in user's form carries their token.
    if language not in LANGUAGES or not same_origin(request) or (session is not None and not token_ok(session, form.get(CSRF_FIELD))):
        raise with_headers(web.HTTPSeeOther(back))
    if user is not None:
        try:
            await asyncio.to_thread(web_.users.set_language, user.name, language)
        except (UserError, DatabaseError, OSError) as exc:  # the cookie still carries the choice in this browser
            log.warning("cannot keep %s's language: %s", user.name, exc)
    response = with_headers(web.HTTPSeeOther(back))
    response.set_cookie(COOKIE, language, httponly=True, samesite="Lax", path="/",
                        secure=web_.config.secure_cookies, max_age=COOKIE_DAYS * 86400)
    raise response
