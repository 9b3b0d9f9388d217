"""The one-time import of the users file (var/users.json, PBX_USERS) that earlier versions kept:
on the first start against a database whose accounts never saw it, every user in it is copied
in, hash and language included, in one transaction, and the database remembers the import, so
the file is never read again (a second process starting at the same moment finds it done)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

from .database import AccountsDatabase
from .names import EXTENSION_RE, NAME_RE, UserError

log = logging.getLogger(__name__)
_DONE = "users_file_imported"


def read_users_file(path: Path) -> list[dict]:
    """The users in the file, checked; UserError names the file and the user that is wrong."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read the users file: {exc.strerror}") from None
    except ValueError as exc:
        raise UserError(f"{path}: not a valid users file ({exc})") from None
    found = []
    for name, body in (doc.get("users", {}) if isinstance(doc, dict) else {}).items():
        if not isinstance(body, dict) or not NAME_RE.match(name) or body.get("role") not in ("admin", "employee") \
                or not isinstance(body.get("password_hash"), str) \
                or (body.get("extension") is not None and not EXTENSION_RE.match(str(body["extension"]))):
            raise UserError(f"{path}: user '{name[:80]}' is not valid (name, role, extension or password_hash)")
        found.append({"name": name, "role": body["role"], "extension": body.get("extension"),
                      "password_hash": body["password_hash"], "display_name": body.get("display_name"),
                      "language": body.get("language"),
                      # as the file's sessions had it: derived from the hash
                      "stamp": hashlib.sha256(body["password_hash"].encode()).hexdigest()[:16]})
    return found


def import_once(db: AccountsDatabase, path: Path | None) -> int | None:
    """Copies the users file in if this database never imported one; the number copied, or None
    when there was nothing to do. A name already in the database is kept as the database has it."""
    if path is None or not path.is_file():
        return None
    if db.rows("SELECT value FROM accounts_meta WHERE key = :key", {"key": _DONE}):
        return None
    users = read_users_file(path)
    with db.transaction() as run:
        if run("SELECT value FROM accounts_meta WHERE key = :key", {"key": _DONE}):
            return None  # another process did it a moment ago
        copied = 0
        for u in users:
            if run("SELECT name FROM users WHERE lower(name) = lower(:name)", {"name": u["name"]}):
                log.warning("%s: user %s is in the database already: kept as it is there", path, u["name"])
                continue
            run("INSERT INTO users (name, role, extension, password_hash, display_name, language, email, source, "
                "disabled, stamp, changed_at) VALUES (:name, :role, :extension, :password_hash, :display_name, "
                ":language, NULL, 'local', 0, :stamp, :at)", {**u, "at": time.time()})
            copied += 1
        run("INSERT INTO accounts_meta (key, value) VALUES (:key, :value)",
            {"key": _DONE, "value": f"{path.resolve()} at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"})
    log.warning("imported %d user(s) from %s into %s; the file is no longer read (keep it as a backup or delete it)",
                copied, path, db.where)
    return copied
