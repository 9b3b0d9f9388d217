"""The users file: a small JSON document the `pbx-app user` commands write and the web page
reads. Passwords are kept only as argon2id hashes; the file is replaced atomically so a crash
never leaves half a file, and it is readable by its owner only."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

Role = Literal["admin", "employee"]
ROLES: tuple[str, ...] = ("admin", "employee")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
EXTENSION_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MIN_PASSWORD = 8

_hasher = PasswordHasher()
# Verifying against this when the name is unknown keeps a wrong name as slow as a wrong password.
_DUMMY_HASH = _hasher.hash("pbx_app: no such user")


class UserError(ValueError):
    """Bad input for a user (name, role, extension, password) or a broken users file."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    extension: str | None  # the employee's own number; an admin may have none
    password_hash: str
    display_name: str | None = None
    language: str | None = None  # the page's language they chose (None: their browser's)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def stamp(self) -> str:
        """Changes whenever the password does (a new hash has a new salt): sessions made with
        an older stamp are over. Derived, so users files from before it need no change."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:16]

    def may_edit(self, extension: str) -> bool:
        """Administrators edit anyone; an employee edits only their own number."""
        return self.is_admin or self.extension == extension


class UserStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        # The page asks on every request; the file is parsed again only when it changed.
        self._cache: tuple[tuple, dict[str, User]] | None = None

    # ---- reading ---------------------------------------------------------------------------

    def load(self) -> dict[str, User]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise UserError(f"{self.path}: cannot read the users file: {exc.strerror}") from None
        identity = (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)
        if self._cache is not None and self._cache[0] == identity:
            return dict(self._cache[1])
        users = self._parse()
        self._cache = (identity, users)
        return dict(users)

    def _parse(self) -> dict[str, User]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise UserError(f"{self.path}: cannot read the users file: {exc.strerror}") from None
        try:
            doc = json.loads(raw)
            users = {}
            for name, body in doc.get("users", {}).items():
                users[name] = User(
                    name=name,
                    role=body["role"],
                    extension=body.get("extension"),
                    password_hash=body["password_hash"],
                    display_name=body.get("display_name"),
                    language=body.get("language"),
                )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"{self.path}: not a valid users file ({exc})") from None
        return users

    def get(self, name: str) -> User | None:
        return self.load().get(name)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when the password matches, else None. Slow on purpose (argon2): call it
        from a worker thread in async code."""
        user = self.get(name)
        try:
            _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        if _hasher.check_needs_rehash(user.password_hash):
            user = User(**{**asdict(user), "password_hash": _hasher.hash(password)})
            self._put(user)
        return user

    # ---- writing ---------------------------------------------------------------------------

    def add(self, name: str, role: str, extension: str | None, password: str,
            display_name: str | None = None, replace: bool = False) -> User:
        if not NAME_RE.match(name):
            raise UserError(f"user name '{name}': use letters, digits and . _ @ - (up to 64)")
        if role not in ROLES:
            raise UserError(f"role '{role}': expected one of {', '.join(ROLES)}")
        if extension is not None and not EXTENSION_RE.match(extension):
            raise UserError(f"extension '{extension}': expected digits or letters, like 101")
        if role == "employee" and not extension:
            raise UserError("an employee needs --extension: the number whose setting they may change")
        if len(password) < MIN_PASSWORD:
            raise UserError(f"the password is too short: at least {MIN_PASSWORD} characters")
        if not replace and name in self.load():
            raise UserError(f"user '{name}' exists already (use 'pbx-app user passwd' to change the password)")
        user = User(name, role, extension, _hasher.hash(password), display_name)  # type: ignore[arg-type]
        self._put(user)
        return user

    def set_password(self, name: str, password: str) -> None:
        user = self.get(name)
        if user is None:
            raise UserError(f"no user '{name}'")
        if len(password) < MIN_PASSWORD:
            raise UserError(f"the password is too short: at least {MIN_PASSWORD} characters")
        self._put(User(**{**asdict(user), "password_hash": _hasher.hash(password)}))

    def set_language(self, name: str, language: str) -> User:
        """The page's language the user chose; ``language`` is one the caller checked."""
        user = self.get(name)
        if user is None:
            raise UserError(f"no user '{name}'")
        user = User(**{**asdict(user), "language": language})
        self._put(user)
        return user

    def remove(self, name: str) -> None:
        users = self.load()
        if name not in users:
            raise UserError(f"no user '{name}'")
        del users[name]
        self._write(users)

    def _put(self, user: User) -> None:
        users = self.load()
        users[user.name] = user
        self._write(users)

    def _write(self, users: dict[str, User]) -> None:
        doc = {"users": {n: {k: v for k, v in asdict(u).items() if k != "name" and v is not None}
                         for n, u in sorted(users.items())}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
