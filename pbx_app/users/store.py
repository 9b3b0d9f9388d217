"""Who may sign in to the web page: accounts in the database (users/database.py). Passwords are
kept only as argon2id hashes. An account made by invitation, or whose password an administrator
reset, has no password until its one-time link is used; a directory account (users/directory.py)
never has one here: the directory checks it.

Each account carries a credential stamp, a random value that changes with the password, the
role, and on disabling: a session made under an older stamp is over at its next request, in
whatever process it lives."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .database import AccountsDatabase
from .names import EXTENSION_RE, NAME_RE, UserError

Role = Literal["admin", "employee"]
Source = Literal["local", "directory"]
ROLES: tuple[str, ...] = ("admin", "employee")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_DISPLAY = 100
MAX_EMAIL = 254

_hasher = PasswordHasher()
# Verifying against this when the name is unknown keeps a wrong name as slow as a wrong password.
_DUMMY_HASH = _hasher.hash("pbx_app: no such user")
_COLUMNS = "name, role, extension, password_hash, display_name, language, email, source, disabled, stamp"

__all__ = ["ROLES", "NAME_RE", "EXTENSION_RE", "MIN_PASSWORD", "User", "UserError", "UserStore"]


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    extension: str | None  # the employee's own number; an admin may have none
    password_hash: str | None  # None: invited or reset (waiting for its link), or a directory account
    display_name: str | None = None
    language: str | None = None  # the page's language they chose (None: their browser's)
    email: str | None = None
    source: Source = "local"
    disabled: bool = False
    stamp: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def pending(self) -> bool:
        """A local account waiting for its one-time link (no password yet)."""
        return self.source == "local" and self.password_hash is None

    def may_edit(self, extension: str) -> bool:
        """Administrators edit anyone; an employee edits only their own number."""
        return self.is_admin or self.extension == extension


def _user(row: dict) -> User:
    return User(row["name"], row["role"], row["extension"], row["password_hash"], row["display_name"],
                row["language"], row["email"], row["source"], bool(row["disabled"]), row["stamp"])


def new_stamp() -> str:
    return secrets.token_hex(8)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password is too short: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"the password is too long: at most {MAX_PASSWORD} characters")


def check_fields(name: str, role: str, extension: str | None, display_name: str | None = None,
                 email: str | None = None) -> None:
    if not NAME_RE.match(name):
        raise UserError(f"user name '{name[:80]}': use letters, digits and . _ @ - (up to 64)")
    if role not in ROLES:
        raise UserError(f"role '{role[:20]}': expected one of {', '.join(ROLES)}")
    if extension is not None and not EXTENSION_RE.match(extension):
        raise UserError(f"extension '{extension[:40]}': expected digits or letters, like 101")
    if role == "employee" and not extension:
        raise UserError("an employee needs an extension: the number whose setting they may change")
    if display_name is not None and len(display_name) > MAX_DISPLAY:
        raise UserError(f"the display name is too long: at most {MAX_DISPLAY} characters")
    if email is not None and (len(email) > MAX_EMAIL or email.count("@") != 1 or any(c.isspace() for c in email)
                              or not all(email.split("@"))):
        raise UserError(f"e-mail address '{email[:80]}': expected one like anna@example.com")


class UserStore:
    """Blocking (argon2 and the database): call it from a worker thread in async code."""

    def __init__(self, db: AccountsDatabase | str):
        self.db = db if isinstance(db, AccountsDatabase) else AccountsDatabase(db)

    @property
    def where(self) -> str:
        return self.db.where

    # ---- reading ---------------------------------------------------------------------------

    def load(self) -> dict[str, User]:
        return {r["name"]: _user(r) for r in self.db.rows(f"SELECT {_COLUMNS} FROM users ORDER BY name")}

    def get(self, name: str) -> User | None:
        rows = self.db.rows(f"SELECT {_COLUMNS} FROM users WHERE name = :name", {"name": name})
        return _user(rows[0]) if rows else None

    def authenticate(self, name: str, password: str) -> User | None:
        """The local user when the password matches and the account is enabled, else None.
        Slow on purpose (argon2), and as slow for an unknown name or an account without one."""
        user = self.get(name)
        usable = user is not None and user.source == "local" and user.password_hash is not None
        try:
            _hasher.verify(user.password_hash if usable else _DUMMY_HASH, password)  # type: ignore[union-attr,arg-type]
        except (VerificationError, InvalidHashError):
            return None
        if not usable or user.disabled:  # type: ignore[union-attr]
            return None
        if _hasher.check_needs_rehash(user.password_hash):  # type: ignore[union-attr,arg-type]
            # Only if nobody changed it meanwhile; the stamp stays, so no session ends.
            self.db.rows("UPDATE users SET password_hash = :new WHERE name = :name AND password_hash = :old RETURNING name",
                         {"new": _hasher.hash(password), "name": name, "old": user.password_hash})  # type: ignore[union-attr]
        return user

    # ---- writing: each a single statement on the columns it changes ----------------------------

    def add(self, name: str, role: str, extension: str | None, password: str | None,
            display_name: str | None = None, email: str | None = None, source: str = "local") -> User:
        """A new account; ``password`` None makes one that waits for its invitation link."""
        check_fields(name, role, extension, display_name, email)
        if password is not None:
            check_password(password)
        user = User(name, role, extension, None if password is None else _hasher.hash(password),  # type: ignore[arg-type]
                    display_name, None, email, source, False, new_stamp())  # type: ignore[arg-type]
        with self.db.transaction() as run:
            if run("SELECT name FROM users WHERE lower(name) = lower(:name)", {"name": name}):
                raise UserError(f"user '{name}' exists already (use 'pbx-app user passwd' to change the password)")
            run(f"INSERT INTO users ({_COLUMNS}, changed_at) VALUES (:name, :role, :extension, :password_hash, "
                ":display_name, :language, :email, :source, :disabled, :stamp, :at)",
                {**user.__dict__, "disabled": 0, "at": time.time()})
        return user

    def _update(self, name: str, sets: str, values: dict, also: str = "") -> User:
        with self.db.transaction() as run:
            rows = run(f"UPDATE users SET {sets}, changed_at = :at WHERE name = :name {also} RETURNING {_COLUMNS}",
                       {**values, "name": name, "at": time.time()})
        if not rows:
            raise UserError(f"no user '{name}'")
        return _user(rows[0])

    def set_password(self, name: str, password: str) -> User:
        """A new password and a new stamp: every session of the user ends (the caller may keep its own)."""
        check_password(password)
        return self._update(name, "password_hash = :hash, stamp = :stamp", {"hash": _hasher.hash(password), "stamp": new_stamp()},
                            "AND source = 'local'")

    def clear_password(self, name: str) -> User:
        """An administrator's reset: the old password stops working now and every session ends;
        the account waits for its one-time link."""
        return self._update(name, "password_hash = NULL, stamp = :stamp", {"stamp": new_stamp()}, "AND source = 'local'")

    def set_role(self, name: str, role: str, extension: str | None) -> User:
        check_fields(name, role, extension)
        return self._update(name, "role = :role, extension = :extension, stamp = :stamp",
                            {"role": role, "extension": extension, "stamp": new_stamp()})

    def set_disabled(self, name: str, disabled: bool) -> User:
        return self._update(name, "disabled = :disabled, stamp = :stamp", {"disabled": int(disabled), "stamp": new_stamp()})

    def set_language(self, name: str, language: str) -> User:
        """The page's language the user chose; ``language`` is one the caller checked."""
        return self._update(name, "language = :language", {"language": language})

    def set_email(self, name: str, email: str | None) -> User:
        check_fields(name, "admin", None, None, email)
        return self._update(name, "email = :email", {"email": email})

    def seen_in_directory(self, name: str, role: str, extension: str | None, display_name: str | None,
                          email: str | None) -> User:
        """A directory sign-in: the account as the directory has it now (made on first sign-in).
        A role or extension that changed there ends the user's other sessions, as here."""
        check_fields(name, role, extension)
        with self.db.transaction() as run:
            rows = run(f"SELECT {_COLUMNS} FROM users WHERE name = :name", {"name": name})
            if rows and rows[0]["source"] != "directory":
                raise UserError(f"user '{name}' is a local account: it signs in with its local password")
            if not rows:
                stamp = new_stamp()
                run(f"INSERT INTO users ({_COLUMNS}, changed_at) VALUES (:name, :role, :extension, NULL, :display_name, "
                    "NULL, :email, 'directory', 0, :stamp, :at)",
                    {"name": name, "role": role, "extension": extension, "display_name": display_name,
                     "email": email, "stamp": stamp, "at": time.time()})
            else:
                old = rows[0]
                stamp = old["stamp"] if (old["role"], old["extension"]) == (role, extension) else new_stamp()
                run("UPDATE users SET role = :role, extension = :extension, display_name = :display_name, email = :email, "
                    "stamp = :stamp, changed_at = :at WHERE name = :name",
                    {"name": name, "role": role, "extension": extension, "display_name": display_name,
                     "email": email, "stamp": stamp, "at": time.time()})
            return _user(run(f"SELECT {_COLUMNS} FROM users WHERE name = :name", {"name": name})[0])

    def remove(self, name: str) -> None:
        with self.db.transaction() as run:
            if not run("DELETE FROM users WHERE name = :name RETURNING name", {"name": name}):
                raise UserError(f"no user '{name}'")
            run("DELETE FROM web_sessions WHERE user_name = :name", {"name": name})
            run("DELETE FROM account_links WHERE user_name = :name", {"name": name})

    def admins(self) -> int:
        """Enabled local administrators with a password: the page never takes away the last one."""
        rows = self.db.rows("SELECT count(*) AS n FROM users WHERE role = 'admin' AND disabled = 0 AND source = 'local' "
                            "AND password_hash IS NOT NULL")
        return int(rows[0]["n"])
