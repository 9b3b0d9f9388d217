"""The account pages' HTML forms: who may post them and with what. A POST needs a signed-in
session, the session's CSRF token in the form and no foreign Origin; an administrators' form
also needs the role; each user's posts share the API's rate (ratelimit.RequestRate); the body
is a bounded form. A refusal changes nothing and says why (401/403/429/400)."""

from __future__ import annotations

import functools
from typing import Awaitable, Callable

from aiohttp import web

from ...users import User
from ..signin.sessions import Session
from .bodies import BadInput, read_form
from .guard import CSRF_FIELD, current, same_origin, state, token_ok, with_headers

FormHandler = Callable[[web.Request, Session, User, dict[str, str]], Awaitable[web.StreamResponse]]
Refusal = Callable[[web.Request, int, str, Session | None, User | None], Awaitable[web.StreamResponse]]


def form_post(refuse: Refusal, admin: bool = False) -> Callable[[FormHandler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    def decorate(handler: FormHandler):
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            session, user = await current(request)
            if user is None or session is None:
                return await refuse(request, 401, "signed_out", None, None)
            if admin and not user.is_admin:
                return await refuse(request, 403, "role", session, user)
            wait = state(request).api_rate.take(user.name)
            if wait:
                response = await refuse(request, 429, "rate", session, user)
                response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
                return response
            try:
                form = await read_form(request)
            except BadInput as exc:
                return await refuse(request, exc.status, "bad_form", session, user)
            if not (same_origin(request) and token_ok(session, form.get(CSRF_FIELD))):
                return await refuse(request, 403, "csrf", session, user)
            try:
                return with_headers(await handler(request, session, user, form))
            except web.HTTPException as exc:
                raise with_headers(exc)

        return wrapper

    return decorate
