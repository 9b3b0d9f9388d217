"""Accounts, for administrators: the list, a new employee's account by invitation (a one-time
link shown once and e-mailed when SMTP is configured), disable and enable, reset a password
(the old one stops working at once; a new link is made), and the role with its extension.

An administrator cannot disable, demote or reset themself here (their own password is changed
on "My account"), and the last enabled local administrator is never taken away: the page
always keeps someone who can manage it. Every change is in the audit log."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import web

from ...i18n import translator
from ...users import DatabaseError, User, UserError
from ...users.store import ROLES
from ..http.bodies import BadInput, text
from ..http.form_guard import form_post
from ..http.guard import client_address, page, state
from ..http.render import render
from ..language.request import language_of
from ..signin.sessions import Session
from . import service
from .mail import send_link
from .render import link_url, refuse

log = logging.getLogger(__name__)
MAX_DISPLAY = 100
MAX_EMAIL = 254


def add_routes(webapp: web.Application) -> None:
    webapp.router.add_get("/accounts", accounts)
    webapp.router.add_post("/accounts", add_account)
    for action in ACTIONS:
        webapp.router.add_post(f"/accounts/{{name}}/{action}", _action(action))


async def _list(request: web.Request, session: Session, user: User, status: int = 200, **context) -> web.Response:
    try:
        people = await service.everyone(state(request))
    except DatabaseError as exc:
        log.error("the accounts list: %s", exc)
        people, status = {}, 503
        context.setdefault("error", translator(language_of(request, user)).gettext(
            "The accounts cannot be shown right now: the database cannot be reached."))
    return await render(request, "accounts.html", status=status, user=user, session=session, section="accounts",
                        people=list(people.values()), roles=ROLES, directory=state(request).directory is not None,
                        **context)


@page
async def accounts(request: web.Request, session: Session, user: User) -> web.StreamResponse:
    if not user.is_admin:
        return await refuse(request, 403, "role", session, user)
    return await _list(request, session, user)


def _field(form: dict[str, str], name: str, limit: int) -> str | None:
    return text(form.get(name), name, limit) or None


@form_post(refuse, admin=True)
async def add_account(request: web.Request, session: Session, user: User, form: dict[str, str]) -> web.StreamResponse:
    web_ = state(request)
    _ = translator(language_of(request, user)).gettext
    try:
        name = _field(form, "name", 64) or ""
        role = form.get("role", "")
        extension = _field(form, "extension", 32)
        display = _field(form, "display_name", MAX_DISPLAY)
        email = _field(form, "email", MAX_EMAIL)
        made, link = await service.invite(web_, user, name, role, extension, display, email)
    except (BadInput, UserError) as exc:
        message = exc.message if isinstance(exc, BadInput) else str(exc)
        return await _list(request, session, user, 400, error=_("The account was not added: %(why)s") % {"why": message},
                           form=form)
    except DatabaseError as exc:
        log.error("adding an account: %s", exc)
        return await _list(request, session, user, 503, error=_("This cannot be done right now: the database cannot be reached."))
    url = link_url(request, link.token)
    mail_error = await send_link(web_.config.accounts.smtp, made.email, made.name, url, "invite",
                                 web_.links.hours, language_of(request, user))
    await web_.record("account_invited", user.name, account=made.name, role=made.role, extension=made.extension,
                      emailed=bool(made.email and web_.config.accounts.smtp and not mail_error),
                      address=client_address(request))
    return await _list(request, session, user, done=_("Account %(name)s added.") % {"name": made.name},
                       link=url, link_for=made.name, mailed=bool(made.email and web_.config.accounts.smtp),
                       mail_error=mail_error)


Action = Callable[[web.Request, Session, User, User, dict[str, str]], Awaitable[web.StreamResponse]]


async def _disable(request, session, admin, target, form):
    return await _switch(request, session, admin, target, True)


async def _enable(request, session, admin, target, form):
    return await _switch(request, session, admin, target, False)


async def _switch(request: web.Request, session: Session, admin: User, target: User, disabled: bool) -> web.StreamResponse:
    web_ = state(request)
    _ = translator(language_of(request, admin)).gettext
    if disabled and target.is_admin and target.source == "local" and await service.is_last_admin(web_):
        return await _list(request, session, admin, 409, error=_("The last administrator cannot be disabled."))
    changed = await service.set_disabled(web_, target.name, disabled)
    await web_.record("account_disabled" if disabled else "account_enabled", admin.name, account=target.name,
                      address=client_address(request))
    done = _("%(name)s is disabled and signed out everywhere.") if disabled else _("%(name)s can sign in again.")
    return await _list(request, session, admin, done=done % {"name": changed.name})


async def _reset(request: web.Request, session: Session, admin: User, target: User, form: dict[str, str]) -> web.StreamResponse:
    web_ = state(request)
    _ = translator(language_of(request, admin)).gettext
    if target.source != "local":
        return await _list(request, session, admin, 409, error=_("%(name)s signs in with the company directory: "
                                                                "reset the password there.") % {"name": target.name})
    if target.is_admin and not target.pending and await service.is_last_admin(web_):
        return await _list(request, session, admin, 409, error=_("The last administrator's password cannot be reset here."))
    kind = "invite" if target.pending and not target.disabled else "reset"
    link = await service.reset(web_, admin, target, kind)
    url = link_url(request, link.token)
    mail_error = await send_link(web_.config.accounts.smtp, target.email, target.name, url, kind, web_.links.hours,
                                 language_of(request, admin))
    await web_.record("account_password_reset", admin.name, account=target.name, address=client_address(request),
                      emailed=bool(target.email and web_.config.accounts.smtp and not mail_error))
    return await _list(request, session, admin, done=_("The password of %(name)s is reset: the old one no longer works "
                                                      "and they are signed out everywhere.") % {"name": target.name},
                       link=url, link_for=target.name, mailed=bool(target.email and web_.config.accounts.smtp),
                       mail_error=mail_error)


async def _role(request: web.Request, session: Session, admin: User, target: User, form: dict[str, str]) -> web.StreamResponse:
    web_ = state(request)
    _ = translator(language_of(request, admin)).gettext
    role = form.get("role", "")
    try:
        extension = _field(form, "extension", 32)
    except BadInput as exc:
        return await _list(request, session, admin, 400, error=exc.message)
    if target.source != "local":
        return await _list(request, session, admin, 409, error=_("%(name)s's role comes from the company directory's groups.")
                           % {"name": target.name})
    if target.is_admin and role != "admin" and await service.is_last_admin(web_):
        return await _list(request, session, admin, 409, error=_("The last administrator cannot be made an employee."))
    try:
        changed = await service.set_role(web_, target.name, role, extension)
    except UserError as exc:
        return await _list(request, session, admin, 400, error=_("The role was not changed: %(why)s") % {"why": str(exc)})
    await web_.record("account_role_set", admin.name, account=target.name, role_before=target.role, role=changed.role,
                      extension_before=target.extension, extension=changed.extension, address=client_address(request))
    return await _list(request, session, admin, done=_("%(name)s is now: %(role)s.") % {
        "name": changed.name, "role": _("Administrator") if changed.is_admin else _("Employee")})


ACTIONS: dict[str, Action] = {"disable": _disable, "enable": _enable, "reset": _reset, "role": _role}


def _action(action: str):
    handler = ACTIONS[action]

    @form_post(refuse, admin=True)
    async def post(request: web.Request, session: Session, admin: User, form: dict[str, str]) -> web.StreamResponse:
        _ = translator(language_of(request, admin)).gettext
        name = request.match_info["name"][:64]
        try:
            target = await service.account(state(request), name)
            if target is None:
                return await _list(request, session, admin, 404, error=_("There is no account %(name)s.") % {"name": name})
            if target.name == admin.name:
                return await _list(request, session, admin, 409, error=_(
                    "You cannot change your own account here: change your password on \"My account\"."))
            return await handler(request, session, admin, target, form)
        except UserError as exc:
            return await _list(request, session, admin, 400, error=str(exc))
        except DatabaseError as exc:
            log.error("account %s, %s: %s", name, action, exc)
            return await _list(request, session, admin, 503, error=_("This cannot be done right now: the database cannot be reached."))

    post.__name__ = f"account_{action}"
    return post
