"""The audit log: one JSON object per line, appended, never rewritten (PBX_AUDIT_LOG,
default var/audit.jsonl). Each line says when, who (user, role, address), what (action,
employee) and the setting before and after. A policy change is recorded before the file is
replaced, so no change is ever made that the log does not show.

It never grows without bound: when the next line would take the file past PBX_AUDIT_MAX_MB
(10 MB), it becomes audit.jsonl.1 (the .1 before it .2, and so on) and a new file starts;
PBX_AUDIT_KEEP (10) old files are kept, the oldest beyond them dropped — at most 110 MB,
years of changes at a site's pace. A lock file makes one writer rotate while the others wait;
a writer that opened the file just before it was renamed still lands its line whole, in .1."""

from __future__ import annotations

import fcntl
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MAX_FIELD = 1000  # characters of any one text field: a line never grows with what a visitor sent
MAX_BYTES = 10 * 1024 * 1024
KEEP = 10


class AuditLog:
    def __init__(self, path: str | Path, max_bytes: int = MAX_BYTES, keep: int = KEEP):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = max(1, keep)

    def record(self, action: str, user: str, **details: Any) -> dict:
        entry = {"at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "user": _bounded(user),
                 "action": action, **{k: _bounded(v) for k, v in details.items()}}
        # backslashreplace: a lone surrogate becomes a JSON \uXXXX escape instead of an error.
        line = (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode("utf-8", "backslashreplace")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._size() + len(line) > self.max_bytes:
            self._rotate(len(line))
        # O_APPEND: each line lands whole at the end, even with several writers.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def old(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def _rotate(self, adding: int) -> None:
        with open(self.path.with_name(f".{self.path.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            size = self._size()
            if size == 0 or size + adding <= self.max_bytes:
                return  # another writer rotated while this one waited (or one line alone is this big)
            for n in range(self.keep - 1, 0, -1):  # .keep is overwritten: the oldest goes
                if self.old(n).exists():
                    os.replace(self.old(n), self.old(n + 1))
            os.replace(self.path, self.old(1))
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)  # the renames outlive a crash
            finally:
                os.close(fd)

    def entries(self) -> list[dict]:
        """Every entry kept, oldest first (the rotated files, then the current one)."""
        out: list[dict] = []
        for path in [*(self.old(n) for n in range(self.keep, 0, -1)), self.path]:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                continue
            out += [json.loads(l) for l in lines if l.strip()]
        return out


def _bounded(value: Any) -> Any:
    return value[:MAX_FIELD] + "…" if isinstance(value, str) and len(value) > MAX_FIELD else value
