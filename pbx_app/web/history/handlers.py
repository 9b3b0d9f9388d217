"""History on the page: GET /history (the page), /api/history (JSON), /history.csv (the same
filters as a spreadsheet) and /api/history/{call}/voicemail (the message a call left, as WAV).

The page's process reads the journal database (PBX_DATABASE_URL) the engines ship to; the
query runs in the store's own thread (SQLite) or asynchronously (PostgreSQL), a couple of
readers at a time. The database filters, counts (up to a cap) and pages: each call keeps its
history row's summary (history/store.py), so a page reads one page of calls however many the
journal holds, and the CSV is streamed a batch at a time, its first bytes out at once."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web

from ...db.errors import StoreError
from ...history.report import Names, names_of
from ...history.rows import history_row, VOICEMAIL
from ...history.store import CallFilter
from ...notices.voicemail import find_message
from ...policy import Policy
from ...users import User
from ..http.guard import api, error, page, state
from ..http.render import render
from ..language.request import texts_for
from ..settings.policy_file import PolicyBroken
from ..signin.sessions import Session
from . import query as hq
from .service import HISTORY, HistoryReader
from .view import as_csv, page_json, shown
from .voicemail import mailbox, may_listen, owner_of

log = logging.getLogger(__name__)
MAX_CALL_ID = 64




def setup(webapp: web.Application, database_url: str, voicemail_dir: Path) -> HistoryReader:
    reader = webapp[HISTORY] = HistoryReader(database_url, voicemail_dir)

    async def close(_: web.Application):
        yield
        await reader.close()

    webapp.cleanup_ctx.append(close)
    r = webapp.router
    r.add_get("/history", history_page)
    r.add_get("/history.csv", history_csv)
    r.add_get("/api/history", history_api)
    r.add_get("/api/history/{call}/voicemail", play_voicemail)
    return reader


async def _policy(request: web.Request) -> Policy | None:
    try:
        return (await state(request).snapshot()).policy
    except PolicyBroken:
        return None  # names and the site's zone are missing; the history itself still shows


@dataclass
class _Asked:
    query: hq.Query
    filter: CallFilter
    names: Names
    policy: Policy | None


async def _ask(request: web.Request, user: User, texts) -> _Asked:
    """BadFilter or NotYours for the handler to answer, before anything is read."""
    today = datetime.now(timezone.utc).astimezone(texts.zone).date()
    query = hq.parse(request.query, today)
    f = hq.call_filter(query, user, texts.zone)
    policy = await _policy(request)
    return _Asked(query, f, names_of(policy) if policy else Names(), policy)


async def _read(request: web.Request, user: User, texts) -> tuple[_Asked, hq.Page]:
    """BadFilter, NotYours or StoreError for the handler to answer."""
    asked = await _ask(request, user, texts)
    return asked, await request.app[HISTORY].page(asked.filter, asked.query)


def _employees(policy: Policy | None, user: User) -> list[dict[str, str]]:
    if not user.is_admin or policy is None:
        return []
    return [{"extension": e.extension, "name": e.name} for e in policy.employees.values()]


@page
async def history_page(request: web.Request, session: Session, user: User) -> web.StreamResponse:
    texts = await texts_for(request, user)
    context = {"user": user, "session": session, "section": "history"}
    if state(request).api_rate.take(user.name):  # each look reads the journal: the API's budget applies
        return await render(request, "history.html", status=429, query=None, **context,
                            problem=texts.gettext("Too many requests: wait a moment, then reload the page."))
    try:
        asked, found = await _read(request, user, texts)
    except hq.BadFilter as exc:
        return await render(request, "history.html", status=400, problem=exc.say(texts.gettext), query=None, **context)
    except hq.NotYours:
        return await render(request, "forbidden.html", status=403, **context)
    except StoreError as exc:
        log.error("the history page cannot read the call journal: %s", exc)
        return await render(request, "history.html", status=503, query=None,
                            problem=texts.gettext("The call history cannot be read right now. Please try again later."),
                            **context)
    query = asked.query
    link = lambda **changes: "/history?" + urlencode(query.params(**changes))  # noqa: E731
    return await render(
        request, "history.html", query=query, page=found, rows=shown(found.rows, asked.names, texts),
        employees=_employees(asked.policy, user), csv_url="/history.csv?" + urlencode(query.params(page=1)),
        previous=link(page=found.number - 1) if found.number > 1 else None,
        next=link(page=found.number + 1) if found.number < found.pages else None,
        **context)


def _api_failure(exc: Exception, user: User) -> web.Response:
    if isinstance(exc, hq.BadFilter):
        return error(400, str(exc), "bad_filter")
    if isinstance(exc, hq.NotYours):
        return error(403, f"{user.name} may see only their own calls (extension {user.extension})", "forbidden")
    log.error("the history API cannot read the call journal: %s", exc)
    return error(503, "the call history cannot be read right now", "unavailable")


@api()
async def history_api(request: web.Request, session: Session, user: User) -> web.Response:
    texts = await texts_for(request, user)
    try:
        asked, found = await _read(request, user, texts)
    except (hq.BadFilter, hq.NotYours, StoreError) as exc:
        return _api_failure(exc, user)
    return web.json_response(page_json(found, asked.names, texts))


@api()
async def history_csv(request: web.Request, session: Session, user: User) -> web.StreamResponse:
    """Every row the filters keep (not only the page on screen), newest first, streamed: the
    first batch is read before the answer starts (a database that is down gets its 503); a
    failure later cuts the download short, which the browser shows as failed, never as a
    shorter file that looks complete."""
    texts = await texts_for(request, user)
    try:
        asked = await _ask(request, user, texts)
        batches = request.app[HISTORY].batches(asked.filter)
        first = await anext(batches, [])
    except (hq.BadFilter, hq.NotYours, StoreError) as exc:
        return _api_failure(exc, user)
    q = asked.query
    name = f"history-{q.first_day.isoformat()}-{q.last_day.isoformat()}.csv"
    response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                           "Content-Disposition": f'attachment; filename="{name}"'})
    await response.prepare(request)
    await response.write(as_csv(first, asked.names, texts).encode())
    try:
        async for rows in batches:
            await response.write((await asyncio.to_thread(as_csv, rows, asked.names, texts, False)).encode())
    except StoreError as exc:
        log.error("the CSV export stopped: the call journal cannot be read: %s", exc)
        raise
    except ConnectionResetError:
        return response  # the reader cancelled the download: stop reading for them
    finally:
        await batches.aclose()
    await response.write_eof()
    return response


@api()
async def play_voicemail(request: web.Request, session: Session, user: User) -> web.StreamResponse:
    call_id = request.match_info["call"]
    if len(call_id) > MAX_CALL_ID:
        return error(404, "no such call", "not_found")
    reader = request.app[HISTORY]
    try:
        call = await reader.call(call_id)
    except StoreError as exc:
        log.error("cannot read the call journal for a voicemail message: %s", exc)
        return error(503, "the call history cannot be read right now", "unavailable")
    if call is None:
        return error(404, "no such call", "not_found")
    owner = owner_of(call)
    policy = await _policy(request)
    if not may_listen(user, owner, policy):
        return error(403, "only the mailbox's owner, its recipients and administrators may listen to its messages",
                     "forbidden")
    if history_row(call).label != VOICEMAIL or call.started_at is None:
        return error(404, "this call left no voicemail message", "not_found")
    message = await asyncio.to_thread(find_message, reader.voicemail_dir, mailbox(policy, owner), call.channel_name,
                                      call.started_at, call.ended_at)
    if message is None:
        return error(404, "the message is no longer in the mailbox", "not_found")
    return web.FileResponse(message.wav, headers={"Content-Type": "audio/wav", "Cache-Control": "private, no-store"})
