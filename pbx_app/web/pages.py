"""The HTML pages: sign in, sign out, and an employee's profile with "If the employee does not
answer". The page's state comes embedded as JSON; app.js drives the Configure dialog."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..users import User
from .guard import CSRF_FIELD, client_address, current, page, same_origin, set_cookie, state, token_ok, with_headers
from .policy_file import PolicyBroken
from .sessions import Session
from .view import employee_view, visible_employees


def add_routes(webapp: web.Application) -> None:
    webapp.router.add_get("/", home)
    webapp.router.add_get("/login", login_form)
    webapp.router.add_post("/login", login)
    webapp.router.add_post("/logout", logout)
    webapp.router.add_get("/employees/{ext}", profile)


def redirect(location: str) -> web.Response:
    return with_headers(web.Response(status=303, headers={"Location": location}))


def render(request: web.Request, template: str, status: int = 200, **context) -> web.Response:
    user = context.get("user")
    if user is not None and user.extension and not user.display_name:
        try:  # the header names the person as the policy does
            employee = state(request).policy.read().policy.employee(user.extension)
            context["who"] = employee.name if employee else None
        except PolicyBroken:
            pass
    html = state(request).templates.get_template(template).render(**context)
    return with_headers(web.Response(text=html, content_type="text/html", status=status))


@page
async def home(request: web.Request, session: Session, user: User) -> web.StreamResponse:
    if user.extension and not user.is_admin:
        raise web.HTTPSeeOther(f"/employees/{user.extension}")
    try:
        snapshot = state(request).policy.read()
    except PolicyBroken as exc:
        return render(request, "broken.html", status=503, user=user, session=session, problems=exc.error.problems)
    first = user.extension if user.extension in snapshot.policy.employees else next(iter(snapshot.policy.employees), None)
    if first is None:
        return render(request, "broken.html", user=user, session=session, problems=["the policy has no employees yet"])
    raise web.HTTPSeeOther(f"/employees/{first}")


@page
async def profile(request: web.Request, session: Session, user: User) -> web.StreamResponse:
    ext = request.match_info["ext"]
    if not user.may_edit(ext):
        return render(request, "forbidden.html", status=403, user=user, session=session)
    try:
        snapshot = state(request).policy.read()
    except PolicyBroken as exc:
        return render(request, "broken.html", status=503, user=user, session=session, problems=exc.error.problems)
    view = employee_view(snapshot, ext)
    if view is None:
        return render(request, "missing.html", status=404, user=user, session=session, extension=ext)
    people = visible_employees(snapshot, user) if user.is_admin else []
    max_mib = f"{state(request).config.max_upload_bytes / 1024 / 1024:g}"
    return render(request, "profile.html", user=user, session=session, view=view, people=people, max_mib=max_mib)


async def login_form(request: web.Request) -> web.StreamResponse:
    session, user = current(request)
    if user is not None:
        raise with_headers(web.HTTPSeeOther("/"))
    web_ = state(request)
    if session is None:
        session = web_.sessions.new()
    response = render(request, "login.html", session=session, error=None, name="")
    set_cookie(request, response, session)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    web_ = state(request)
    session = web_.sessions.get(request.cookies.get("pbx_session"))
    form = await request.post()
    name = str(form.get("name", "")).strip()
    password = str(form.get("password", ""))
    address = client_address(request)

    def again(message: str, status: int) -> web.Response:
        fresh = session or web_.sessions.new()
        response = render(request, "login.html", status=status, session=fresh, error=message, name=name)
        set_cookie(request, response, fresh)
        return response

    if not same_origin(request) or not token_ok(session, str(form.get(CSRF_FIELD, ""))):
        return again("Your sign-in form expired. Please try again.", 403)
    wait = web_.limiter.retry_after(name, address)
    if wait > 0:
        response = again(f"Too many failed attempts. Try again in {int(wait) + 1} seconds.", 429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    user = await asyncio.to_thread(web_.users.authenticate, name, password)
    if user is None:
        web_.limiter.failed(name, address)
        web_.audit.record("sign_in_failed", name, address=address)
        return again("Wrong user name or password.", 401)
    web_.limiter.succeeded(name)
    web_.sessions.drop(session.id if session else None)
    fresh = web_.sessions.new(user.name)  # a new id at sign-in: a planted one is worth nothing
    web_.audit.record("sign_in", user.name, role=user.role, address=address)
    response = redirect("/")
    set_cookie(request, response, fresh)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    web_ = state(request)
    session = web_.sessions.get(request.cookies.get("pbx_session"))
    form = await request.post()
    if not (same_origin(request) and token_ok(session, str(form.get(CSRF_FIELD, "")))):
        raise with_headers(web.HTTPSeeOther("/"))  # not from our page: change nothing
    web_.sessions.drop(session.id)  # type: ignore[union-attr]
    response = redirect("/login")
    response.del_cookie("pbx_session", path="/")
    return response
