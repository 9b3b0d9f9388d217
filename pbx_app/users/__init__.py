"""Who may sign in to the web page: names, roles, extensions and argon2 password hashes."""

from .store import ROLES, User, UserError, UserStore

__all__ = ["ROLES", "User", "UserError", "UserStore"]
