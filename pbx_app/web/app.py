"""Wiring of the web feature: its state (users, sessions, the policy file, announcements, the
audit log) and its routes on the shared aiohttp Application."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import jinja2
from aiohttp import web

from ..announcements import AnnouncementStore, TextToSpeech
from ..users import UserStore
from .audit import AuditLog
from .config import WebConfig
from .policy_file import PolicyFile
from .ratelimit import LoginLimiter
from .sessions import SessionStore

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent


@dataclass
class Web:
    config: WebConfig
    users: UserStore
    policy: PolicyFile
    announcements: AnnouncementStore
    audit: AuditLog
    # Called after a save so the next call follows it (the app's PolicyHolder.reload).
    reload: Callable[[], object] | None = None
    sessions: SessionStore = field(default_factory=SessionStore)
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    templates: jinja2.Environment = field(
        default_factory=lambda: jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
        )
    )

    def policy_changed(self) -> None:
        if self.reload is None:
            return
        try:
            self.reload()
        except Exception:  # the file is saved; the holder's own polling will pick it up
            log.exception("policy reload after a web save failed")


WEB = web.AppKey("pbx_app.web", Web)


def setup(webapp: web.Application, config: WebConfig, reload: Callable[[], object] | None = None,
          tts: TextToSpeech | None = None) -> Web:
    from . import api, pages

    state = Web(
        config=config,
        users=UserStore(config.users_path),
        policy=PolicyFile(config.policy_path),
        announcements=AnnouncementStore(config.announcements_dir, max_bytes=config.max_upload_bytes, tts=tts),
        audit=AuditLog(config.audit_path),
        reload=reload,
    )
    webapp[WEB] = state
    pages.add_routes(webapp)
    api.add_routes(webapp)
    webapp.router.add_static("/ui/static/", HERE / "static", name="pbx_web_static")
    return state
