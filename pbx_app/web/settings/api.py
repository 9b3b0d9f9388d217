"""The settings' JSON API under the page, with the page's rules: administrators read and change
anyone's setting; an employee only their own (403 otherwise, and nothing changes). Every body is
read bounded (http/bodies.py); slow work — the policy's parse and validation, saves, fsync —
runs in worker threads, never on the event loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from aiohttp import web

from ...announcements.names import SpokenNames, says_name
from ...users import User
from ..http.bodies import BadInput, read_json
from ..http.guard import api, client_address, error, state
from ..signin.sessions import Session
from ..state import Web
from . import service
from .no_answer import SettingError, action_from_json, setting_from_json
from .mobile import apply_mobile, mobile_from_json
from .notices import apply_notices, notices_from_json
from .policy_file import FileChanged, InvalidEdit, PolicyBroken, Snapshot, apply_action, apply_setting
from .schedule import apply_schedule, schedule_from_json
from .view import employee_view, find_colleagues, find_employees, search_arguments

log = logging.getLogger(__name__)

MAX_EXT = 32  # an extension or department id, as the policy allows


def add_routes(webapp: web.Application) -> None:
    r = webapp.router
    r.add_get("/api/me", me)
    r.add_get("/api/employees", employees)
    r.add_get("/api/employees/{ext}/no-answer", get_no_answer)
    r.add_put("/api/employees/{ext}/no-answer", put_no_answer)
    r.add_get("/api/employees/{ext}/colleagues", colleagues)
    r.add_get("/api/employees/{ext}", get_no_answer)  # the whole profile, as /no-answer gives it
    r.add_put("/api/employees/{ext}/reception", put_reception)
    r.add_put("/api/employees/{ext}/schedule", put_schedule)
    r.add_put("/api/employees/{ext}/notices", put_notices)
    r.add_put("/api/employees/{ext}/mobile", put_mobile)


def broken(web_: Web, user: User, exc: PolicyBroken) -> web.Response:
    """Administrators get the problems; an employee only that an administrator knows."""
    web_.report_broken(exc)
    if user.is_admin:
        return error(503, "the policy file has errors; an administrator must fix it first", "policy_invalid",
                     problems=[str(p) for p in exc.error.problems])
    return error(503, "the policy has a problem, an administrator has been told; "
                 "your calls keep following the last good settings", "policy_invalid")


def _forbidden(user: User, ext: str) -> web.Response:
    return error(403, f"{user.name} may change only their own setting (extension {user.extension})", "forbidden")


def _search_arguments(request: web.Request) -> tuple[str, int, int]:
    """?q=, ?page=, ?per_page= (BadInput, a 400, when they are not)."""
    try:
        return search_arguments(request.query)
    except ValueError as exc:
        raise BadInput(400, str(exc), "bad_request") from None


def _extension(request: web.Request) -> str:
    ext = request.match_info["ext"]
    if len(ext) > MAX_EXT:
        raise BadInput(404, "no such employee in the policy", "not_found")
    return ext


@api()
async def me(request: web.Request, session: Session, user: User) -> web.Response:
    return web.json_response({"name": user.name, "role": user.role, "extension": user.extension,
                              "csrf_token": session.csrf})


@api()
async def employees(request: web.Request, session: Session, user: User) -> web.Response:
    """A page of the employees the user may see: ?q= (name, extension or department; every
    word must match), ?page= (from 1), ?per_page= (at most 100). Never the whole company."""
    query, page, per_page = _search_arguments(request)
    web_ = state(request)
    try:
        snapshot = await web_.snapshot()
    except PolicyBroken as exc:
        return broken(web_, user, exc)
    # In a thread: after a save the search index is built anew (~0.1 s at 10,000 employees).
    return web.json_response(await asyncio.to_thread(find_employees, snapshot, user, query, page, per_page))


@api()
async def colleagues(request: web.Request, session: Session, user: User) -> web.Response:
    """?q=: colleagues the employee's calls can be forwarded to, at most 20 (a big company's
    page does not carry them all)."""
    ext = _extension(request)
    if not user.may_edit(ext):
        return _forbidden(user, ext)
    query, _, _ = _search_arguments(request)
    web_ = state(request)
    try:
        snapshot = await web_.snapshot()
        if snapshot.policy.employee(ext) is None:
            return error(404, f"no employee {ext} in the policy", "not_found")
    except PolicyBroken as exc:
        return broken(web_, user, exc)
    return web.json_response({"colleagues": await asyncio.to_thread(find_colleagues, snapshot, ext, query)})


@api()
async def get_no_answer(request: web.Request, session: Session, user: User) -> web.Response:
    ext = _extension(request)
    if not user.may_edit(ext):
        return _forbidden(user, ext)
    web_ = state(request)
    try:
        view = employee_view(await web_.snapshot(), ext)
    except PolicyBroken as exc:
        return broken(web_, user, exc)
    if view is None:
        return error(404, f"no employee {ext} in the policy", "not_found")
    return web.json_response(view)


@api(mutating=True)
async def put_no_answer(request: web.Request, session: Session, user: User) -> web.Response:
    def edit(snapshot: Snapshot, body: dict, keep: Callable[[str], Callable[[str], bool]], ext: str):
        setting = setting_from_json(body.get("setting"), snapshot.policy, ext, keep("on_no_answer"))
        after = lambda later: setting.to_json()  # noqa: E731
        return (lambda entry: apply_setting(entry, setting)), [("set_no_answer", _no_answer_json, after)]

    return await _spoken_name(request, await _save(request, user, "{version, setting}", edit))


@api(mutating=True)
async def put_reception(request: web.Request, session: Session, user: User) -> web.Response:
    """Several of no-answer, busy and unreachable in one save: {version, on_no_answer?,
    on_busy?, on_unreachable?}; null for busy or unreachable is "same as no answer"."""

    def edit(snapshot: Snapshot, body: dict, keep, ext: str):
        changes, audits, problems = [], [], {}
        for slot in RECEPTION:
            if slot not in body:
                continue
            try:
                if slot == "on_no_answer":
                    setting = setting_from_json(body[slot], snapshot.policy, ext, keep(slot))
                    changes.append(lambda entry, s=setting: apply_setting(entry, s))
                else:
                    setting = action_from_json(body[slot], snapshot.policy, ext, keep(slot), slot)
                    changes.append(lambda entry, slot=slot, s=setting: apply_action(entry, slot, s))
            except SettingError as exc:
                problems.update({f"{slot}.{k}": v for k, v in exc.problems.items()})
                continue
            audits.append((AUDIT_ACTIONS[slot], _slot_json(slot), _slot_json(slot)))
        if problems:
            raise SettingError(problems)
        if not changes:
            raise SettingError({"setting": "nothing to change: send on_no_answer, on_busy or on_unreachable"})
        return (lambda entry: [change(entry) for change in changes]), audits

    return await _spoken_name(request, await _save(request, user, "{version, on_no_answer, on_busy, on_unreachable}", edit))


@api(mutating=True)
async def put_schedule(request: web.Request, session: Session, user: User) -> web.Response:
    """Working hours, absences and what happens while away: {version, hours, absences, on_absent}."""

    def edit(snapshot: Snapshot, body: dict, keep, ext: str):
        setting = schedule_from_json(body, snapshot.policy, ext, keep("on_absent"))
        return (lambda entry: apply_schedule(entry, setting)), [("set_schedule", _schedule_json, _schedule_json)]

    return await _spoken_name(request, await _save(request, user, "{version, hours, absences, on_absent}", edit))


@api(mutating=True)
async def put_notices(request: web.Request, session: Session, user: User) -> web.Response:
    """The employee's e-mail and their mailbox's extra recipients: {version, email, voicemail_to}."""

    def edit(snapshot: Snapshot, body: dict, keep, ext: str):
        setting = notices_from_json(body, snapshot.policy, ext)
        return (lambda entry: apply_notices(entry, setting)), [("set_notices", _notices_json, _notices_json)]

    return await _save(request, user, "{version, email, voicemail_to}", edit)


@api(mutating=True)
async def put_mobile(request: web.Request, session: Session, user: User) -> web.Response:
    """The employee's mobile and "ring my mobile too": {version, mobile, ring, after}; an
    administrator also sends external_forwarding (an employee's is ignored)."""

    def edit(snapshot: Snapshot, body: dict, keep, ext: str):
        setting = mobile_from_json(body, snapshot.policy, ext, user.is_admin)
        return (lambda entry: apply_mobile(entry, setting)), [("set_mobile", _mobile_json, _mobile_json)]

    return await _spoken_name(request, await _save(request, user, "{version, mobile, ring, after}", edit))


async def _spoken_name(request: web.Request, response: web.Response) -> web.Response:
    """After a save: when whoever answers the employee's calls now hears whose they are (the
    mobile's confirm, a whisper), their name is made from the policy's if there is none yet (a
    recording is kept). One that cannot be made leaves the digits; the save stands."""
    if response.status != 200:
        return response
    web_, ext = state(request), _extension(request)
    try:
        employee = (await web_.snapshot()).policy.employee(ext)
    except PolicyBroken:
        return response
    if employee is not None and says_name(employee):
        done = await SpokenNames(web_.config.announcements_dir, web_.announcements.tts).make_missing([employee])
        for why in done.failed.values():
            log.warning("the spoken name of %s could not be made (its digits are said): %s", ext, why)
    return response


RECEPTION = ("on_no_answer", "on_busy", "on_unreachable")
AUDIT_ACTIONS = {"on_no_answer": "set_no_answer", "on_busy": "set_busy", "on_unreachable": "set_unreachable"}


def _no_answer_json(view: dict) -> dict:
    return view["setting"]


def _slot_json(slot: str) -> Callable[[dict], Any]:
    return _no_answer_json if slot == "on_no_answer" else lambda view: view["slots"][slot]["setting"]


def _schedule_json(view: dict) -> dict:
    return {"hours": view["hours"], "absences": view["absences"], "on_absent": view["slots"]["on_absent"]["setting"]}


def _notices_json(view: dict) -> dict:
    return view["notices"]


def _mobile_json(view: dict) -> dict:
    return view["mobile"]


async def _save(request: web.Request, user: User, shape: str, edit: service.Edit) -> web.Response:
    """One save of an employee's entry, with the page's rules (settings/service.py): the answer
    the page expects for each way it can go."""
    ext = _extension(request)
    if not user.may_edit(ext):
        return _forbidden(user, ext)
    web_ = state(request)
    body = await read_json(request, shape)
    version = body.get("version")
    if not isinstance(version, str) or len(version) > 64:
        return error(400, f"expected a JSON body {shape} with 'version' from the GET", "bad_request")
    try:
        view = await service.save(web_, user, client_address(request), ext, body, version, edit)
    except service.NoEmployee:
        return error(404, f"no employee {ext} in the policy", "not_found")
    except SettingError as exc:
        return error(400, f"the setting is not valid: {exc}", "invalid", problems=exc.problems)
    except service.Stale as exc:
        return error(409, "someone changed this setting after you opened it; nothing was saved. "
                     "Reload to see the current setting, then make your change again.", "stale",
                     version=exc.version, current=exc.current)
    except FileChanged:
        return error(409, "the policy file was changed by someone else while saving; nothing was saved. "
                     "Reload, then make your change again.", "file_changed")
    except PolicyBroken as exc:
        return broken(web_, user, exc)
    except InvalidEdit as exc:
        problems = [p.message for p in exc.error.problems] if user.is_admin else []
        return error(400, "the policy would not be valid with this change; nothing was saved", "invalid",
                     problems=problems)
    return web.json_response(view)
