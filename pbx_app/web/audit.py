"""The audit log: one JSON object per line, appended, never rewritten (PBX_AUDIT_LOG,
default var/audit.jsonl). Each line says when, who (user, role, address), what (action,
employee) and the setting before and after. A policy change is recorded before the file is
replaced, so no change is ever made that the log does not show."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MAX_FIELD = 1000  # characters of any one text field: a line never grows with what a visitor sent


class AuditLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def record(self, action: str, user: str, **details: Any) -> dict:
        entry = {"at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "user": _bounded(user),
                 "action": action, **{k: _bounded(v) for k, v in details.items()}}
        # backslashreplace: a lone surrogate becomes a JSON \uXXXX escape instead of an error.
        line = (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode("utf-8", "backslashreplace")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: each line lands whole at the end, even with several writers.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def entries(self) -> list[dict]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(l) for l in lines if l.strip()]


def _bounded(value: Any) -> Any:
    return value[:MAX_FIELD] + "…" if isinstance(value, str) and len(value) > MAX_FIELD else value
