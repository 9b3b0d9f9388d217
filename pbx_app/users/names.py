"""What a user name and an extension may look like, and the error for bad account input."""

from __future__ import annotations

import re

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
EXTENSION_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class UserError(ValueError):
    """Bad input for an account (name, role, extension, password), or an unusable users file."""
