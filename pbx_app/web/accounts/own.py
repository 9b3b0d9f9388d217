"""Everyone's own account: "My account" (change one's password, the old one asked; every other
session of the user ends), and the one-time link page where an invited employee, or one whose
password an administrator reset, sets a password.

The old password is checked with the sign-in limits (ratelimit.LoginLimiter): a stolen session
cannot guess it faster than the sign-in form could. The link page has no session: its form is
protected as the sign-in form is (formtoken.py), and every attempt counts against the
visitor's address, so tokens cannot be guessed in bulk (they are 256 random bits anyway)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ...i18n import translator
from ...users import DatabaseError, User, UserError
from ...users.store import MAX_PASSWORD, check_password
from ..http.bodies import BadInput, read_form
from ..http.form_guard import form_post
from ..http.guard import CSRF_FIELD, client_address, page, same_origin, state, with_headers
from ..http.render import render
from ..language.request import language_of
from ..signin.sessions import Session
from . import service
from .render import LINK_PATH, refuse

log = logging.getLogger(__name__)
LINK_COOKIE = "pbx_link"


def add_routes(webapp: web.Application) -> None:
    webapp.router.add_get("/account", account)
    webapp.router.add_post("/account/password", change_password)
    webapp.router.add_get(LINK_PATH + "{token}", link_form)
    webapp.router.add_post(LINK_PATH + "{token}", use_link)


@page
async def account(request: web.Request, session: Session, user: User) -> web.StreamResponse:
    return await render(request, "account.html", user=user, session=session, section="account")


@form_post(refuse)
async def change_password(request: web.Request, session: Session, user: User, form: dict[str, str]) -> web.StreamResponse:
    web_ = state(request)
    _ = translator(language_of(request, user)).gettext

    async def again(status: int, error: str) -> web.StreamResponse:
        return await render(request, "account.html", status=status, user=user, session=session, section="account", error=error)

    if user.source != "local":
        return await again(400, _("Your password is kept by the company directory: change it there."))
    old, new, repeat = form.get("old", ""), form.get("new", ""), form.get("again", "")
    if len(old) > MAX_PASSWORD or len(new) > MAX_PASSWORD:
        return await again(400, _("The password is too long."))
    if new != repeat:
        return await again(400, _("The two new passwords differ."))
    try:
        check_password(new)
    except UserError:
        return await again(400, _("The new password is too short: at least 8 characters."))
    address = client_address(request)
    attempt = web_.limiter.begin(user.name, address)
    if attempt.wait > 0:
        response = await again(429, _("Too many wrong passwords. Try again in a few minutes."))
        response.headers["Retry-After"] = str(int(attempt.wait) + 1)
        return response
    if attempt.delay:
        await asyncio.sleep(attempt.delay)
    try:
        if not await service.password_is(web_, user.name, old):
            await web_.record("password_change_failed", user.name, address=address)
            return await again(403, _("The current password is wrong."))
        web_.limiter.succeeded(attempt)
        changed, ended = await service.change_password(web_, session, user.name, new)
    except (DatabaseError, UserError) as exc:
        log.error("password change of %s: %s", user.name, exc)
        return await again(503, _("The password could not be changed right now. Please try again later."))
    await web_.record("password_changed", user.name, address=address, sessions_ended=ended)
    return await render(request, "account.html", user=changed, session=session, section="account",
                        done=_("Your password is changed. You were signed out everywhere else."))


async def _link_page(request: web.Request, status: int = 200, **context) -> web.Response:
    web_ = state(request)
    token = request.cookies.get(LINK_COOKIE, "")
    if not web_.forms.valid(token, token):
        token = web_.forms.issue()
    response = await render(request, "account_link.html", status=status, form_token=token, section="account", **context)
    response.set_cookie(LINK_COOKIE, token, httponly=True, samesite="Strict", path=LINK_PATH.rstrip("/"),
                        secure=web_.config.secure_cookies, max_age=int(web_.forms.max_age))
    return response


async def link_form(request: web.Request) -> web.StreamResponse:
    web_ = state(request)
    try:
        link = await service.peek_link(web_, request.match_info["token"])
    except DatabaseError as exc:
        log.error("one-time link: %s", exc)
        link = None
    if link is None:
        return await _link_page(request, 404, invalid=True)
    return await _link_page(request, name=link.user, kind=link.kind)


async def use_link(request: web.Request) -> web.StreamResponse:
    web_ = state(request)
    _ = translator(language_of(request, None)).gettext
    token = request.match_info["token"]
    try:
        form = await read_form(request)
    except BadInput:
        return await _link_page(request, 400, error=_("The form could not be read. Please try again."))
    if not same_origin(request) or not web_.forms.valid(request.cookies.get(LINK_COOKIE), form.get(CSRF_FIELD)):
        return await _link_page(request, 403, error=_("Your form expired. Please try again."))
    address = client_address(request)
    attempt = web_.limiter.begin("one-time link", address)  # counted per address, whatever the token
    if attempt.wait > 0:
        response = await _link_page(request, 429, error=_("Too many attempts. Try again in a few minutes."))
        response.headers["Retry-After"] = str(int(attempt.wait) + 1)
        return response
    new, repeat = form.get("new", ""), form.get("again", "")
    if new != repeat:
        return await _link_page(request, 400, error=_("The two passwords differ."), name=form.get("name", "")[:64])
    try:
        name = await service.use_link(web_, token, new)
    except UserError as exc:
        text = str(exc)
        if "short" in text or "long" in text:
            return await _link_page(request, 400, error=_("The password must be 8 to 1024 characters long."),
                                    name=form.get("name", "")[:64])
        await web_.record("account_link_refused", "", address=address)
        return await _link_page(request, 404, invalid=True)
    except DatabaseError as exc:
        log.error("one-time link: %s", exc)
        return await _link_page(request, 503, error=_("This cannot be done right now. Please try again later."))
    web_.limiter.succeeded(attempt)
    await web_.record("account_link_used", name, address=address)
    response = await _link_page(request, done=True, name=name)
    response.del_cookie(LINK_COOKIE, path=LINK_PATH.rstrip("/"))
    return with_headers(response)
