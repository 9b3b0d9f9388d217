"""The accounts feature's one way to the accounts' database: the list, invitations and resets
(a one-time link each), disable, role, the user's own password and the links' use. Each call
runs in a worker thread; password hashing (argon2) waits its turn, a couple at a time. Raises
what the store raises (UserError, DatabaseError)."""

from __future__ import annotations

import asyncio

from ...users import User
from ...users.links import Link
from ..signin.sessions import Session
from ..state import Web


async def everyone(web_: Web) -> dict[str, User]:
    return await asyncio.to_thread(web_.users.load)


async def account(web_: Web, name: str) -> User | None:
    return await asyncio.to_thread(web_.users.get, name)


async def is_last_admin(web_: Web) -> bool:
    """Only one enabled local administrator is left: the page must keep them."""
    return await asyncio.to_thread(web_.users.admins) <= 1


async def invite(web_: Web, admin: User, name: str, role: str, extension: str | None, display: str | None,
                 email: str | None) -> tuple[User, Link]:
    made = await asyncio.to_thread(web_.users.add, name, role, extension, None, display, email)
    return made, await asyncio.to_thread(web_.links.issue, made.name, "invite", admin.name)


async def reset(web_: Web, admin: User, target: User, kind: str) -> Link:
    """The old password stops working at once; the link sets a new one."""
    await asyncio.to_thread(web_.users.clear_password, target.name)
    return await asyncio.to_thread(web_.links.issue, target.name, kind, admin.name)


async def set_disabled(web_: Web, name: str, disabled: bool) -> User:
    return await asyncio.to_thread(web_.users.set_disabled, name, disabled)


async def set_role(web_: Web, name: str, role: str, extension: str | None) -> User:
    return await asyncio.to_thread(web_.users.set_role, name, role, extension)


async def password_is(web_: Web, name: str, password: str) -> bool:
    async with web_.hashing:
        return await asyncio.to_thread(web_.users.authenticate, name, password) is not None


async def change_password(web_: Web, session: Session, name: str, new: str) -> tuple[User, int]:
    """The account with its new password, and how many of its other sessions were ended."""
    async with web_.hashing:
        changed = await asyncio.to_thread(web_.users.set_password, name, new)
    return changed, await asyncio.to_thread(web_.sessions.keep_only, session, changed.stamp)


async def peek_link(web_: Web, token: str) -> Link | None:
    return await asyncio.to_thread(web_.links.peek, token)


async def use_link(web_: Web, token: str, password: str) -> str:
    """The account's name, its password now set (UserError: the link or the password is refused)."""
    async with web_.hashing:
        return await asyncio.to_thread(web_.links.redeem, token, password)
