"""Whose password is it: a local account's (argon2, here) or a directory account's (the directory,
users/directory.py). A local account always signs in locally, so local administrators still get
in while the directory is down; a name with no local account goes to the directory when one is
configured. The directory is asked with a deadline and a bound on checks at once: a silent one
costs a sign-in a few seconds and a clear message, never the page.

The sign-in handlers reach the accounts and sessions only through here."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ...users import DatabaseError, User, UserError
from ...users.directory import DirectoryDown, DirectoryRefused
from ..state import Web
from .sessions import Session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    user: User | None
    failure: str = ""  # "wrong", "directory_down", "database_down"


async def check(web_: Web, name: str, password: str) -> Outcome:
    try:
        local = await asyncio.to_thread(web_.users.get, name)
    except DatabaseError as exc:
        log.error("sign-in of %s: %s", name, exc)
        return Outcome(None, "database_down")
    if web_.directory is None or (local is not None and local.source == "local"):
        async with web_.hashing:
            try:
                user = await asyncio.to_thread(web_.users.authenticate, name, password)
            except DatabaseError as exc:
                log.error("sign-in of %s: %s", name, exc)
                return Outcome(None, "database_down")
        return Outcome(user, "" if user else "wrong")
    return await _directory(web_, name, password, local)


async def _directory(web_: Web, name: str, password: str, local: User | None) -> Outcome:
    directory = web_.directory
    assert directory is not None
    deadline = directory.settings.timeout
    if web_.asking_directory.locked():
        return Outcome(None, "directory_down")  # checks already wait on it: this one would too
    async with web_.asking_directory:
        try:
            # The thread keeps ldap3's own timeouts; this bound holds even if a step ignores them.
            found = await asyncio.wait_for(asyncio.to_thread(directory.authenticate, name, password), deadline * 2 + 1)
        except DirectoryRefused as exc:
            log.info("directory sign-in of %s refused: %s", name, exc)
            return Outcome(None, "wrong")
        except (DirectoryDown, asyncio.TimeoutError) as exc:
            log.error("the directory did not answer for %s: %s", name, exc or f"no answer in {deadline * 2 + 1:g} s")
            return Outcome(None, "directory_down")
    if local is not None and local.disabled:
        return Outcome(None, "wrong")  # an administrator disabled this directory account here
    try:
        user = await asyncio.to_thread(web_.users.seen_in_directory, found.name, found.role, found.extension,
                                       found.display_name, found.email)
    except (UserError, DatabaseError) as exc:
        log.error("directory sign-in of %s: %s", name, exc)
        return Outcome(None, "wrong" if isinstance(exc, UserError) else "database_down")
    return Outcome(None if user.disabled else user, "" if not user.disabled else "wrong")


async def start_session(web_: Web, user: User, planted: str | None) -> Session:
    """A new session for a user who just signed in, and whatever session id the browser brought
    dropped: a planted one is worth nothing. DatabaseError (logged) when it cannot be kept."""
    try:
        await asyncio.to_thread(web_.sessions.drop, planted)
        return await asyncio.to_thread(web_.sessions.new, user.name, user.stamp)
    except DatabaseError as exc:
        log.error("cannot keep the session of %s: %s", user.name, exc)
        raise


async def end_session(web_: Web, session_id: str) -> None:
    try:
        await asyncio.to_thread(web_.sessions.drop, session_id)
    except DatabaseError as exc:
        log.error("cannot end a session: %s", exc)
