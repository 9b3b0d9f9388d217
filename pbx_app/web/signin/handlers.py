"""Sign in and sign out.

Signing in keeps no server state until the password is right: the form's CSRF token is a signed
cookie (formtoken.py). Each attempt is counted before the password is checked (ratelimit.py),
and the check itself (argon2) runs in a worker thread, a couple at a time (service.py)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ...i18n import translator
from ...users import DatabaseError
from ...users.names import NAME_RE
from ..http.bodies import BadInput, read_form
from ..http.guard import CSRF_FIELD, client_address, current, same_origin, set_cookie, state, token_ok, with_headers
from ..http.render import redirect, render
from ..language.request import language_of
from . import service
from .formtoken import COOKIE as FORM_COOKIE
from .sessions import COOKIE

MAX_NAME = 64
MAX_PASSWORD = 1024


def add_routes(webapp: web.Application) -> None:
    webapp.router.add_get("/login", login_form)
    webapp.router.add_post("/login", login)
    webapp.router.add_post("/logout", logout)


async def _form(request: web.Request, status: int = 200, error: str | None = None, name: str = "") -> web.Response:
    """The sign-in form with a signed token, in the form and in its cookie: the visitor's own
    while it is still good, else a fresh one."""
    web_ = state(request)
    token = request.cookies.get(FORM_COOKIE, "")
    if not web_.forms.valid(token, token):
        token = web_.forms.issue()
    response = await render(request, "login.html", status=status, form_token=token, error=error, name=name)
    response.set_cookie(FORM_COOKIE, token, httponly=True, samesite="Strict", path="/login",
                        secure=web_.config.secure_cookies, max_age=int(web_.forms.max_age))
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    _, user = await current(request)
    if user is not None:
        raise with_headers(web.HTTPSeeOther("/"))
    return await _form(request)


async def login(request: web.Request) -> web.StreamResponse:
    web_ = state(request)
    said = translator(language_of(request, None))  # not signed in yet: the browser's language or the switch's
    _ = said.gettext
    try:
        form = await read_form(request)
    except BadInput as exc:
        return await _form(request, exc.status, _("The sign-in form could not be read. Please try again."))
    name = form.get("name", "").strip()
    password = form.get("password", "")
    if not same_origin(request) or not web_.forms.valid(request.cookies.get(FORM_COOKIE), form.get(CSRF_FIELD)):
        return await _form(request, 403, _("Your sign-in form expired. Please try again."))
    if len(name) > MAX_NAME or not NAME_RE.match(name) or len(password) > MAX_PASSWORD:
        shown = name if len(name) <= MAX_NAME else ""
        return await _form(request, 400, _("No such user name or password (too long or not allowed characters)."), shown)
    address = client_address(request)
    attempt = web_.limiter.begin(name, address)  # counted now, before the password is checked
    if attempt.wait > 0:
        seconds = int(attempt.wait) + 1
        wait = said.ngettext(
            "Too many failed attempts. Try again in {n} second.", "Too many failed attempts. Try again in {n} seconds.", seconds)
        response = await _form(request, 429, wait.format(n=seconds), name)
        response.headers["Retry-After"] = str(seconds)
        return response
    if attempt.delay:
        await asyncio.sleep(attempt.delay)  # the name is under attack: everyone slows down a little
    outcome = await service.check(web_, name, password)
    user = outcome.user
    if user is None:
        await web_.record("sign_in_failed", name, address=address, reason=outcome.failure)
        if outcome.failure == "directory_down":
            return await _form(request, 503, _("The company directory did not answer. Please try again in a minute; "
                                                "local administrators can still sign in."), name)
        if outcome.failure == "database_down":
            return await _form(request, 503, _("Sign-in is not available right now: the accounts' database cannot be reached."), name)
        return await _form(request, 401, _("Wrong user name or password."), name)
    web_.limiter.succeeded(attempt)
    try:
        fresh = await service.start_session(web_, user, request.cookies.get(COOKIE))
    except DatabaseError:
        return await _form(request, 503, _("Sign-in is not available right now: the accounts' database cannot be reached."), name)
    await web_.record("sign_in", user.name, role=user.role, address=address)
    response = redirect("/")
    set_cookie(request, response, fresh)
    response.del_cookie(FORM_COOKIE, path="/login")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    web_ = state(request)
    session, _ = await current(request)
    try:
        form = await read_form(request)
    except BadInput:
        form = {}
    if session is None or not (same_origin(request) and token_ok(session, form.get(CSRF_FIELD))):
        raise with_headers(web.HTTPSeeOther("/"))  # not from our page: change nothing
    await service.end_session(web_, session.id)
    response = redirect("/login")
    response.del_cookie(COOKIE, path="/")
    return response
