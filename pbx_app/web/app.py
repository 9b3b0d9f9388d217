"""Wiring of the web feature: its state, its routes, the Host check and the housekeeping of the
announcements folder, on an aiohttp Application (the page's own process: web/server.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Callable

from aiohttp import web

from ..announcements import AnnouncementStore, TextToSpeech
from ..users import AccountsDatabase, DatabaseError, UserError, UserStore
from ..users.directory import Directory
from ..users.legacy_file import import_once
from ..users.links import Links
from .accounts import admin as account_admin
from .accounts import own as account_self
from .announcements import handlers as announcements
from .announcements import names as spoken_names
from .audit import AuditLog
from .config import WebConfig
from .history import handlers as history
from .http.edge import allowed_hosts_middleware
from .language import request as language
from .settings import api as settings_api
from .settings import pages as settings_pages
from .settings.policy_file import PolicyFile
from .signin import handlers as signin
from .signin.formtoken import FormTokens
from .signin.sessions import SessionStore
from .state import WEB, Web

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
COLLECT_EVERY = 300.0  # seconds between looks for page-made sounds nothing uses any more


def setup(webapp: web.Application, config: WebConfig, reload: Callable[[], object] | None = None,
          tts: TextToSpeech | None = None) -> Web:
    accounts = AccountsDatabase(config.database_url)
    try:
        import_once(accounts, config.users_path)  # the older users file, once per database
    except (UserError, DatabaseError) as exc:  # the page still serves the database's accounts
        log.error("the users file was not imported: %s", exc)
    try:
        # One key for every web process on this database: a sign-in form served by one is
        # accepted by the others (and after a restart).
        forms = FormTokens(accounts.shared_secret("form_key"))
    except DatabaseError as exc:
        log.error("the accounts' database cannot be reached (sign-in will say so): %s", exc)
        forms = FormTokens()
    state = Web(
        config=config,
        users=UserStore(accounts),
        sessions=SessionStore(accounts),
        links=Links(accounts, config.accounts.link_hours),
        directory=Directory(config.accounts.directory) if config.accounts.directory else None,
        forms=forms,
        policy=PolicyFile(config.policy_path),
        announcements=AnnouncementStore(
            config.announcements_dir, max_bytes=config.max_upload_bytes, tts=tts, conversions=config.conversions,
            quota_bytes=config.upload_quota_bytes, per_hour=config.uploads_per_hour,
            unused_seconds=config.unused_upload_seconds),
        audit=AuditLog(config.audit_path, config.audit_max_bytes, config.audit_keep),
        reload=reload,
    )
    webapp[WEB] = state
    webapp.middlewares.append(allowed_hosts_middleware(config.allowed_hosts))
    signin.add_routes(webapp)
    language.add_routes(webapp)
    settings_pages.add_routes(webapp)
    settings_api.add_routes(webapp)
    announcements.add_routes(webapp)
    spoken_names.add_routes(webapp)
    account_self.add_routes(webapp)
    account_admin.add_routes(webapp)
    history.setup(webapp, config.database_url, config.voicemail_dir)
    webapp.router.add_static("/ui/static/", HERE / "static", name="pbx_web_static")
    webapp.cleanup_ctx.append(_housekeeping)
    return state


async def collect_unused(state: Web) -> list[str]:
    """One pass: page-made sounds the policy does not mention, unused past the grace period."""
    try:
        text = await asyncio.to_thread(state.policy.all_text)
    except (OSError, UnicodeDecodeError):
        return []  # cannot tell what is in use: remove nothing
    removed = await state.announcements.collect(text)
    for name in removed:
        log.info("removed the announcement %s: made on the page, no setting has used it for %g h",
                 name, state.config.unused_upload_seconds / 3600)
    return removed


async def _housekeeping(webapp: web.Application):
    async def loop() -> None:
        while True:
            try:
                await collect_unused(webapp[WEB])
            except Exception:  # never let housekeeping take the page down
                log.exception("announcements housekeeping failed")
            await asyncio.sleep(COLLECT_EVERY)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
