"""Writing an install (or undo) plan: every file it changes is first copied into
<etc>/pbx_app-backup/<time>/; each file is replaced whole (a temporary file, then a rename), keeping
its mode and owner; our new files in Asterisk's folder get the owner of its extensions.conf."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from .install import Plan

BACKUP_DIR = "pbx_app-backup"


def apply(plan: Plan, etc: Path, now: datetime | None = None) -> Path | None:
    """Writes the plan; returns the backup folder (None when nothing changed)."""
    pending = plan.pending
    if not pending:
        return None
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%S.%fZ")
    backup = etc / BACKUP_DIR / stamp
    backup.mkdir(parents=True, mode=0o750)
    os.chmod(etc / BACKUP_DIR, 0o750)
    owner = (etc / "extensions.conf").stat()
    for change in pending:
        if change.before is not None:
            # The secret file's copy stays as private as the file itself.
            target = backup / (change.path.name if change.path.parent == etc else "ari-password")
            shutil.copy2(change.path, target)
    for change in pending:
        if change.after is None:
            change.path.unlink()
            continue
        change.path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        tmp = change.path.with_name(f".{change.path.name}.pbx_app-tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     change.mode if change.before is None else change.path.stat().st_mode & 0o777)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(change.after)
        if change.before is not None:
            st = change.path.stat()
            _chown(tmp, st.st_uid, st.st_gid)
        elif change.path.parent == etc:
            _chown(tmp, owner.st_uid, owner.st_gid)  # Asterisk's files are Asterisk's
        os.replace(tmp, change.path)
    return backup


def _chown(path: Path, uid: int, gid: int) -> None:
    try:
        os.chown(path, uid, gid)
    except PermissionError:
        pass  # not root: the file stays ours, as the rest of the folder is
