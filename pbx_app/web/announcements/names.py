"""An employee's spoken name on the page (announcements/names.py): what whoever answers a
forwarded call hears instead of the extension's digits. The employee sets their own, an
administrator anyone's: upload a recording, make it from the policy's name, play it, remove it
(the digits are said again). Every change is in the audit log."""

from __future__ import annotations

import functools
from typing import Awaitable, Callable

from aiohttp import web

from ...announcements import AnnouncementError
from ...announcements.names import MAX_BYTES, SpokenName, SpokenNames
from ...users import User
from ..http.guard import api, client_address, error, state
from ..settings.policy_file import PolicyBroken
from ..signin.sessions import Session
from ..state import Web
from .upload import received


def add_routes(webapp: web.Application) -> None:
    webapp.router.add_routes([
        web.get("/api/names/{ext}", get_name),
        web.get("/api/names/{ext}/sound", play_name),
        web.post("/api/names/{ext}", upload_name),
        web.post("/api/names/{ext}/tts", make_name),
        web.delete("/api/names/{ext}", remove_name),
    ])


def names_of(web_: Web) -> SpokenNames:
    return SpokenNames(web_.config.announcements_dir, web_.announcements.tts)


def _json(name: SpokenName) -> dict:
    return {"extension": name.extension, "kind": name.kind, "said": name.said,
            "url": f"/api/names/{name.extension}/sound" if name.kind else None}


async def _employee_name(web_: Web, ext: str) -> str | None:
    """The policy's ``name`` of ``ext``; None when there is no such employee."""
    try:
        employee = (await web_.snapshot()).policy.employee(ext)
    except PolicyBroken:
        return None
    return employee.name if employee is not None else None


def _own_or_admin(handler: Callable[[web.Request, User, str], Awaitable[web.StreamResponse]]):
    """The extension in the path, refused unless it is the user's own or the user administers."""
    @functools.wraps(handler)
    async def checked(request: web.Request, session: Session, user: User) -> web.StreamResponse:
        ext = request.match_info["ext"]
        if not user.may_edit(ext):
            return error(403, f"{user.name} may change only their own name (extension {user.extension})", "forbidden")
        return await handler(request, user, ext)
    return checked


@api()
@_own_or_admin
async def get_name(request: web.Request, user: User, ext: str) -> web.Response:
    return web.json_response(_json(names_of(state(request)).get(ext)))


@api()
@_own_or_admin
async def play_name(request: web.Request, user: User, ext: str) -> web.StreamResponse:
    path = names_of(state(request)).path(ext)
    if path is None:
        return error(404, "no spoken name: the extension's digits are said", "not_found")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


@api(mutating=True)
@_own_or_admin
async def upload_name(request: web.Request, user: User, ext: str) -> web.Response:
    web_ = state(request)
    if await _employee_name(web_, ext) is None:
        return error(404, f"no employee {ext} in the policy", "not_found")
    too_large = f"the file is too large: the limit for a name is {MAX_BYTES // 1024 // 1024} MiB"
    async with received(request, MAX_BYTES, too_large) as upload:
        try:
            name = await names_of(web_).record(ext, upload.path)
        except AnnouncementError as exc:
            return error(exc.status, str(exc), exc.code)
    await web_.record("name_upload", user.name, role=user.role, address=client_address(request), extension=ext, bytes=upload.size)
    return web.json_response(_json(name))


@api(mutating=True)
@_own_or_admin
async def make_name(request: web.Request, user: User, ext: str) -> web.Response:
    """The name said by text-to-speech from the policy's ``name`` (replaces a recording)."""
    web_ = state(request)
    said = await _employee_name(web_, ext)
    if said is None:
        return error(404, f"no employee {ext} in the policy", "not_found")
    try:
        name = await names_of(web_).make(ext, said)
    except AnnouncementError as exc:
        return error(exc.status, str(exc), "bad_text")
    await web_.record("name_tts", user.name, role=user.role, address=client_address(request), extension=ext, text=said)
    return web.json_response(_json(name))


@api(mutating=True)
@_own_or_admin
async def remove_name(request: web.Request, user: User, ext: str) -> web.Response:
    web_ = state(request)
    names = names_of(web_)
    try:
        names.remove(ext)
    except AnnouncementError as exc:
        return error(exc.status, str(exc), exc.code)
    await web_.record("name_remove", user.name, role=user.role, address=client_address(request), extension=ext)
    return web.json_response(_json(names.get(ext)))
