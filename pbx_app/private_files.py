"""Files that hold clients' numbers and people's accounts — the call journal, the callback and
notices databases, the journal's spool, the users store — are the service user's alone: 0600
files, 0700 folders, whatever the umask (issue 32: journal.db was 644). Files an older version
left readable by others are tightened when opened."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700


def _tighten(path: Path, mode: int) -> None:
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & ~mode:
            os.chmod(path, current & mode)
    except FileNotFoundError:
        pass
    except PermissionError:
        log.warning("%s is readable by other users and not ours to chmod: chmod %o it", path, mode)


def private_dir(path: Path) -> Path:
    """``path`` as a folder only we can enter (its parents, if made, get the umask's mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        pass
    _tighten(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """``path`` made if missing, readable and writable by us only."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))
    _tighten(path, FILE_MODE)
    return path


def open_private(path: Path, flags: int) -> int:
    """os.open with O_CREAT and our mode: a new file is born private, an old one is tightened."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    _tighten(path, FILE_MODE)
    return fd


def private_sqlite(path: str) -> None:
    """A SQLite database and its -wal/-shm/-journal companions (SQLite gives those the
    database's own mode when it makes them). A database that exists is only chmod'ed, never
    opened: closing any descriptor of a file drops every POSIX lock this process holds on it,
    SQLite's included, and another store of this process may have it open (the journal, the
    callback requests and the accounts share one file)."""
    db = Path(path)
    try:
        os.close(os.open(db, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE))  # new: nobody has it open
    except FileExistsError:
        pass
    for name in (path, path + "-wal", path + "-shm", path + "-journal"):
        _tighten(Path(name), FILE_MODE)
