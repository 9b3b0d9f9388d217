"""What the account pages share: the refusal page a form gets (why, in the reader's language),
and the address of a one-time link as the person who gets it will open it."""

from __future__ import annotations

from aiohttp import web

from ...i18n import translator
from ...users import User
from ..http.guard import state
from ..http.render import render
from ..language.request import language_of
from ..signin.sessions import Session

LINK_PATH = "/account/link/"


def link_url(request: web.Request, token: str) -> str:
    # The Host header was checked against PBX_WEB_ALLOWED_HOSTS by the edge middleware.
    base = state(request).config.accounts.public_url or f"{request.scheme}://{request.host}"
    return f"{base}{LINK_PATH}{token}"


async def refuse(request: web.Request, status: int, code: str, session: Session | None, user: User | None,
                 message: str | None = None) -> web.StreamResponse:
    _ = translator(language_of(request, user)).gettext
    reasons = {
        "signed_out": _("You are not signed in (or your session has ended). Please sign in again."),
        "role": _("Only administrators can do this."),
        "rate": _("Too many requests: please wait a moment and try again."),
        "bad_form": _("The form could not be read. Please reload the page and try again."),
        "csrf": _("This request did not come from this page (the security check failed). Please reload the page and try again."),
    }
    return await render(request, "refused.html", status=status, user=user, session=session,
                        message=message or reasons.get(code, ""), code=code, section="account")
