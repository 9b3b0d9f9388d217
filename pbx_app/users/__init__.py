"""Who may sign in to the web page: accounts in the journal's database (names, roles,
extensions, argon2 password hashes, directory accounts), one-time links and the old file's import."""

from .database import AccountsDatabase, DatabaseError
from .names import UserError
from .store import ROLES, User, UserStore

__all__ = ["ROLES", "AccountsDatabase", "DatabaseError", "User", "UserError", "UserStore"]
