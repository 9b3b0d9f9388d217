"""The HTML pages of the settings: home (an employee goes to their own profile, an administrator
to the first one) and an employee's profile with "If the employee does not answer". The page's
state comes embedded as JSON; app.js drives the Configure dialog and saves through the API
(settings/api.py)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ...i18n import translator
from ...users import User
from ..http.guard import page, state
from ..http.render import render
from ..language.request import language_of
from ..signin.sessions import Session
from .policy_file import PolicyBroken
from .view import employee_view, find_employees, search_arguments


def add_routes(webapp: web.Application) -> None:
    webapp.router.add_get("/", home)
    webapp.router.add_get("/employees/{ext}", profile)


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
