"""The web feature's state (users, sessions and one-time links in the database, the directory, the policy file, announcements, the audit log, the
sign-in limits) and the key it is kept under on the aiohttp Application."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import jinja2
from aiohttp import web

from ..announcements import AnnouncementStore
from ..users import UserStore
from ..users.directory import Directory
from ..users.links import Links
from .audit import AuditLog
from .config import WebConfig
from .settings.policy_file import PolicyBroken, PolicyFile, Snapshot
from .settings.view import search_index
from .signin.formtoken import FormTokens
from .signin.ratelimit import LoginLimiter, RequestRate
from .signin.sessions import SessionStore

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
DIRECTORY_AT_ONCE = 4
HASHES_AT_ONCE = 2  # argon2 takes 64 MiB and a core per check: a burst waits its turn


def _templates() -> jinja2.Environment:
    # Every text of a template goes through _() / {% trans %} so the page can be translated.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    return env


@dataclass
class Web:
    config: WebConfig
    users: UserStore
    policy: PolicyFile
    announcements: AnnouncementStore
    audit: AuditLog
    sessions: SessionStore
    links: Links
    # Called after a save so the next call follows it (an engine's PolicyStore.reload, when the
    # page shares its process); engines in other processes see the file's new mtime within 1 s.
    reload: Callable[[], object] | None = None
    directory: Directory | None = None
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    api_rate: RequestRate = field(default_factory=RequestRate)
    forms: FormTokens = field(default_factory=FormTokens)
    hashing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(HASHES_AT_ONCE))
    # Directory checks waiting on a silent server each hold a thread: a few at once, the rest
    # are told at once that the directory is not answering.
    asking_directory: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(DIRECTORY_AT_ONCE))
    templates: jinja2.Environment = field(default_factory=lambda: _templates())
    _reported: str = ""
    # One thread parses the policy, and requests arriving meanwhile share its result: a burst
    # of readers costs one parse, and the event loop competes with one busy thread, not eight.
    _reader: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "pbx-policy-read"))
    _reading: asyncio.Future | None = None

    async def snapshot(self) -> Snapshot:
        """The policy as it stands, parsed and validated off the event loop (PolicyBroken when
        it does not validate)."""
        if self._reading is None:
            self._reading = asyncio.get_running_loop().run_in_executor(self._reader, self._read)
            self._reading.add_done_callback(self._read_done)
        return await asyncio.shield(self._reading)

    def _read(self) -> Snapshot:
        snapshot = self.policy.read()
        search_index(snapshot)  # built here, in the reading thread, not by the first search
        return snapshot

    def saved(self) -> None:
        """After a save: a read begun before it must not answer requests made after it."""
        self._reading = None
        self.policy_changed()

    def _read_done(self, future: asyncio.Future) -> None:
        if self._reading is future:
            self._reading = None
        if not future.cancelled():
            future.exception()  # retrieved here: a reader that went away must not leave it unlogged

    async def record(self, action: str, user: str, **details) -> dict:
        """An audit entry, written and fsynced off the event loop."""
        return await asyncio.to_thread(self.audit.record, action, user, **details)

    def report_broken(self, exc: PolicyBroken) -> None:
        """Tells the administrators (the log) once per distinct set of problems."""
        text = str(exc.error)
        digest = hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()
        if digest != self._reported:
            self._reported = digest
            log.error("the web page cannot show or change settings, the policy file has errors:\n%s", text)

    def policy_changed(self) -> None:
        if self.reload is None:
            return
        try:
            self.reload()
        except Exception:  # the file is saved; the holder's own polling will pick it up
            log.exception("policy reload after a web save failed")


WEB = web.AppKey("pbx_app.web", Web)
