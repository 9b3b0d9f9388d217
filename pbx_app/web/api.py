"""The JSON API under the page, with the page's rules: administrators read and change anyone's
setting; an employee only their own (403 otherwise, and nothing changes)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from aiohttp import web

from ..announcements import AnnouncementError
from ..users import User
from .guard import api, client_address, error, state
from .policy_file import InvalidEdit, PolicyBroken, StaleVersion, UnknownEmployee
from .sessions import Session
from .setting import SettingError, setting_from_json
from .view import employee_view, visible_employees

log = logging.getLogger(__name__)
CHUNK = 64 * 1024


def add_routes(webapp: web.Application) -> None:
    r = webapp.router
    r.add_get("/api/me", me)
    r.add_get("/api/employees", employees)
    r.add_get("/api/employees/{ext}/no-answer", get_no_answer)
    r.add_put("/api/employees/{ext}/no-answer", put_no_answer)
    r.add_post("/api/announcements", upload_announcement)
    r.add_post("/api/announcements/tts", tts_announcement)
    r.add_get("/api/announcements/{name}", play_announcement)
    r.add_get("/api/sounds/standard/{lang}", play_standard)


def _broken(exc: PolicyBroken) -> web.Response:
    return error(503, "the policy file has errors; an administrator must fix it first", "policy_invalid",
                 problems=[str(p) for p in exc.error.problems])


def _forbidden(user: User, ext: str) -> web.Response:
    return error(403, f"{user.name} may change only their own setting (extension {user.extension})", "forbidden")


@api()
async def me(request: web.Request, session: Session, user: User) -> web.Response:
    return web.json_response({"name": user.name, "role": user.role, "extension": user.extension,
                              "csrf_token": session.csrf})


@api()
async def employees(request: web.Request, session: Session, user: User) -> web.Response:
    try:
        snapshot = state(request).policy.read()
    except PolicyBroken as exc:
        return _broken(exc)
    return web.json_response({"employees": visible_employees(snapshot, user)})


@api()
async def get_no_answer(request: web.Request, session: Session, user: User) -> web.Response:
    ext = request.match_info["ext"]
    if not user.may_edit(ext):
        return _forbidden(user, ext)
    try:
        view = employee_view(state(request).policy.read(), ext)
    except PolicyBroken as exc:
        return _broken(exc)
    if view is None:
        return error(404, f"no employee {ext} in the policy", "not_found")
    return web.json_response(view)


@api(mutating=True)
async def put_no_answer(request: web.Request, session: Session, user: User) -> web.Response:
    ext = request.match_info["ext"]
    if not user.may_edit(ext):
        return _forbidden(user, ext)
    web_ = state(request)
    try:
        body = await request.json()
    except ValueError:
        return error(400, "expected a JSON body: {version, setting}", "bad_request")
    if not isinstance(body, dict) or not isinstance(body.get("version"), str):
        return error(400, "expected a JSON body with 'version' (from the GET) and 'setting'", "bad_request")
    try:
        snapshot = web_.policy.read()
    except PolicyBroken as exc:
        return _broken(exc)
    if snapshot.policy.employee(ext) is None:
        return error(404, f"no employee {ext} in the policy", "not_found")
    try:
        setting = setting_from_json(body.get("setting"), snapshot.policy, ext,
                                    lambda name: web_.announcements.path(name) is not None)
    except SettingError as exc:
        return error(400, f"the setting is not valid: {exc}", "invalid", problems=exc.problems)

    def audit(before, after) -> None:
        web_.audit.record(
            "set_no_answer", user.name, role=user.role, address=client_address(request), employee=ext,
            before=employee_view(before, ext)["setting"], after=setting.to_json(),
            version_before=before.version(ext), version_after=after.version(ext),
        )

    try:
        saved = await web_.policy.save_no_answer(ext, setting, body["version"], before_write=audit)
    except StaleVersion as exc:
        current = employee_view(web_.policy.read(), ext)
        return error(409, "someone changed this setting after you opened it; nothing was saved. "
                     "Reload to see the current setting, then make your change again.", "stale",
                     version=exc.current, current=current)
    except UnknownEmployee:
        return error(404, f"no employee {ext} in the policy", "not_found")
    except PolicyBroken as exc:
        return _broken(exc)
    except InvalidEdit as exc:
        return error(400, "the policy would not be valid with this change; nothing was saved", "invalid",
                     problems=[p.message for p in exc.error.problems])
    web_.policy_changed()
    log.info("%s (%s) set the no-answer setting of %s", user.name, user.role, ext)
    return web.json_response(employee_view(saved.after, ext))


@api(mutating=True)
async def upload_announcement(request: web.Request, session: Session, user: User) -> web.Response:
    web_ = state(request)
    limit = web_.announcements.max_bytes
    too_large = f"the file is too large: the limit is {limit / 1024 / 1024:.1f} MiB"
    if request.content_length is not None and request.content_length > limit + CHUNK:
        return error(413, too_large, "too_large")
    try:
        reader = await request.multipart()
        part = await reader.next()
        while part is not None and getattr(part, "name", None) != "file":
            part = await reader.next()
    except (ValueError, AssertionError, KeyError):
        return error(400, "expected a form upload with a 'file' field", "bad_request")
    if part is None:
        return error(400, "expected a form upload with a 'file' field", "bad_request")
    # Saved outside the announcements folder first, under our own name: the sender's file name
    # never becomes a path.
    with tempfile.TemporaryDirectory(prefix="pbx-upload-") as tmp:
        upload = Path(tmp) / "upload"
        size = 0
        with open(upload, "wb") as f:
            while chunk := await part.read_chunk(CHUNK):
                size += len(chunk)
                if size > limit:
                    return error(413, too_large, "too_large")
                f.write(chunk)
        try:
            stored = await web_.announcements.import_upload(upload)
        except AnnouncementError as exc:
            return error(400, str(exc), "bad_sound")
    web_.audit.record("announcement_upload", user.name, role=user.role, address=client_address(request),
                      file=stored.name, seconds=stored.seconds, bytes=size, sent_as=(part.filename or "")[:200])
    return web.json_response({"file": stored.name, "seconds": stored.seconds, "url": f"/api/announcements/{stored.name}"})


@api(mutating=True)
async def tts_announcement(request: web.Request, session: Session, user: User) -> web.Response:
    web_ = state(request)
    try:
        body = await request.json()
    except ValueError:
        return error(400, "expected a JSON body: {text, language}", "bad_request")
    if not isinstance(body, dict):
        return error(400, "expected a JSON body: {text, language}", "bad_request")
    text = " ".join(str(body.get("text") or "").split())
    language = str(body.get("language") or "en")
    try:
        stored = await web_.announcements.from_text(text, language)
    except AnnouncementError as exc:
        return error(400, str(exc), "bad_text")
    web_.audit.record("announcement_tts", user.name, role=user.role, address=client_address(request),
                      file=stored.name, seconds=stored.seconds, language=language, text=text)
    return web.json_response({"file": stored.name, "seconds": stored.seconds, "text": text,
                              "url": f"/api/announcements/{stored.name}"})


@api()
async def play_announcement(request: web.Request, session: Session, user: User) -> web.StreamResponse:
    path = state(request).announcements.path(request.match_info["name"])
    if path is None:
        return error(404, "no such announcement", "not_found")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


@api()
async def play_standard(request: web.Request, session: Session, user: User) -> web.StreamResponse:
    lang = request.match_info["lang"]
    if lang not in ("en", "ru"):
        return error(404, "no such language", "not_found")
    path = state(request).config.standard_sounds / lang / "forward-notice.wav"
    if not path.is_file():
        return error(404, "the standard message is not installed here", "not_found")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})
