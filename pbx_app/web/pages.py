"""The HTML pages: sign in, sign out, and an employee's profile with "If the employee does not
answer". The page's state comes embedded as JSON; app.js drives the Configure dialog.

Signing in keeps no server state until the password is right: the form's CSRF token is a signed
cookie (formtoken.py). Each attempt is counted before the password is checked (ratelimit.py),
and the check itself (argon2) runs in a worker thread, a couple at a time."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..i18n import translator
from ..users import DatabaseError, User
from ..users.names import NAME_RE
from . import signin
from .bodies import BadInput, read_form
from .formtoken import COOKIE as FORM_COOKIE
from .guard import CSRF_FIELD, client_address, current, page, same_origin, set_cookie, state, token_ok, with_headers
from .language_request import MAX_NEXT, language_of, texts_for
from .language_request import add_routes as language_routes
from .policy_file import PolicyBroken
from .sessions import COOKIE
from .sessions import Session
from .view import employee_view, find_employees, search_arguments

log = logging.getLogger(__name__)
MAX_NAME = 64
MAX_PASSWORD = 1024


def add_routes(webapp: web.Application) -> None:
    webapp.router.add_get("/", home)
    webapp.router.add_get("/login", login_form)
    webapp.router.add_post("/login", login)
    webapp.router.add_post("/logout", logout)
    webapp.router.add_get("/employees/{ext}", profile)
    language_routes(webapp)


def redirect(location: str) -> web.Response:
    return with_headers(web.Response(status=303, headers={"Location": location}))


async def render(request: web.Request, template: str, status: int = 200, **context) -> web.Response:
    user = context.get("user")
    if user is not None and user.extension and not user.display_name:
        try:  # the header names the person as the policy does
            employee = (await state(request).snapshot()).policy.employee(user.extension)
            context["who"] = employee.name if employee else None
        except PolicyBroken:
            pass
    texts = await texts_for(request, user)
    context.setdefault("here", request.path_qs if len(request.path_qs) <= MAX_NEXT else request.path)
    context.setdefault("section", "profile")
    html = state(request).templates.get_template(template).render(**texts.template_context(), **context)
    return with_headers(web.Response(text=html, content_type="text/html", status=status))


async def _broken_page(request: web.Request, session: Session, user: User, exc: PolicyBroken) -> web.Response:
    state(request).report_broken(exc)
    problems = exc.error.problems if user.is_admin else []
    return await render(request, "broken.html", status=503, user=user, session=session, problems=problems)


@page
async def home(request: web.Request, session: Session, user: User) -> web.StreamResponse:
    if user.extension and not user.is_admin:
        raise web.HTTPSeeOther(f"/employees/{user.extension}")
    try:
        snapshot = await state(request).snapshot()
    except PolicyBroken as exc:
        return await _broken_page(request, session, user, exc)
    first = user.extension if user.extension in snapshot.policy.employees else next(iter(snapshot.policy.employees), None)
    if first is None:
        return await render(request, "broken.html", user=user, session=session, problems=["the policy has no employees yet"])
    raise web.HTTPSeeOther(f"/employees/{first}")


@page
async def profile(request: web.Request, session: Session, user: User) -> web.StreamResponse:
    ext = request.match_info["ext"][:32]
    if not user.may_edit(ext):
        return await render(request, "forbidden.html", status=403, user=user, session=session)
    try:
        snapshot = await state(request).snapshot()
    except PolicyBroken as exc:
        return await _broken_page(request, session, user, exc)
    said = translator(language_of(request, user)).gettext
    view = employee_view(snapshot, ext, said)
    if view is None:
        return await render(request, "missing.html", status=404, user=user, session=session, extension=ext)
    try:
        query, page, _ = search_arguments(request.query)
    except ValueError:
        query, page = "", 1
    people = await asyncio.to_thread(find_employees, snapshot, user, query, page, gettext=said) if user.is_admin else None
    max_mib = f"{state(request).config.max_upload_bytes / 1024 / 1024:g}"
    return await render(request, "profile.html", user=user, session=session, view=view, people=people, max_mib=max_mib)


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
    outcome = await signin.check(web_, name, password)
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
        await asyncio.to_thread(web_.sessions.drop, request.cookies.get(COOKIE))
        # a new id at sign-in: a planted one is worth nothing
        fresh = await asyncio.to_thread(web_.sessions.new, user.name, user.stamp)
    except DatabaseError as exc:
        log.error("cannot keep the session of %s: %s", user.name, exc)
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
    try:
        await asyncio.to_thread(web_.sessions.drop, session.id)
    except DatabaseError as exc:
        log.error("cannot end a session: %s", exc)
    response = redirect("/login")
    response.del_cookie(COOKIE, path="/")
    return response
