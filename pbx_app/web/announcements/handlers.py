"""Announcements on the page: upload a recording, make one from text, play one back, play the
standard messages. Bodies are read bounded; sox and espeak-ng run as subprocesses, never on the
event loop (announcements/store.py); every new sound is in the audit log."""

from __future__ import annotations

from aiohttp import web

from ...announcements import AnnouncementError
from ...users import User
from ..http.bodies import read_json, text
from ..http.guard import api, client_address, error, state
from ..settings.no_answer import MAX_TEXT
from ..signin.sessions import Session
from . import service
from .upload import received


def add_routes(webapp: web.Application) -> None:
    webapp.router.add_routes([
        web.post("/api/announcements", upload_announcement),
        web.post("/api/announcements/tts", tts_announcement),
        web.get("/api/announcements/{name}", play_announcement),
        web.get("/api/sounds/standard/{lang}", play_standard),
    ])


def _sound_error(exc: AnnouncementError) -> web.Response:
    return error(exc.status, str(exc), exc.code, retry_after=exc.retry_after)


@api(mutating=True)
async def upload_announcement(request: web.Request, session: Session, user: User) -> web.Response:
    web_ = state(request)
    limit = web_.announcements.max_bytes
    async with received(request, limit, f"the file is too large: the limit is {limit / 1024 / 1024:.1f} MiB") as upload:
        try:
            stored = await service.upload(web_, user, client_address(request), upload.path, upload.size, upload.sent_as)
        except AnnouncementError as exc:
            return _sound_error(exc)
    return web.json_response({"file": stored.name, "seconds": stored.seconds, "url": f"/api/announcements/{stored.name}"})


@api(mutating=True)
async def tts_announcement(request: web.Request, session: Session, user: User) -> web.Response:
    web_ = state(request)
    body = await read_json(request, "{text, language}")
    said = text(body.get("text"), "text", MAX_TEXT)
    language = body.get("language") or "en"
    if not isinstance(language, str) or len(language) > 10:
        return error(400, "'language' must be en or ru", "bad_text")
    try:
        stored = await service.from_text(web_, user, client_address(request), said, language)
    except AnnouncementError as exc:
        if exc.code == "bad_sound":
            exc.code = "bad_text"
        return _sound_error(exc)
    return web.json_response({"file": stored.name, "seconds": stored.seconds, "text": said,
                              "url": f"/api/announcements/{stored.name}"})


@api()
async def play_announcement(request: web.Request, session: Session, user: User) -> web.StreamResponse:
    path = await service.playable(state(request), user, request.match_info["name"])
    if path is None:
        return error(404, "no such announcement", "not_found")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


@api()
async def play_standard(request: web.Request, session: Session, user: User) -> web.StreamResponse:
    lang = request.match_info["lang"]
    if lang not in ("en", "ru"):
        return error(404, "no such language", "not_found")
    path = service.standard(state(request), lang, request.query.get("sound"))
    if path is None:
        return error(404, "the standard message is not installed here", "not_found")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})
