"""Which sounds in the announcements folder the page made, for whom, how large, and when they
were made and last referred to by the policy: a small JSON file in the folder itself
(``.pbx-index.json``; the leading dot keeps it out of every name the page serves). A file not in
the index is a sysadmin's: the page never shows it to employees and never removes it."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

INDEX_NAME = ".pbx-index.json"


@dataclass
class Made:
    owner: str
    bytes: int
    made: float  # epoch seconds
    seen: float  # when the policy last referred to it (0: never yet)


class UploadIndex:
    def __init__(self, folder: Path):
        self.path = folder / INDEX_NAME
        self._files: dict[str, Made] | None = None

    @property
    def files(self) -> dict[str, Made]:
        if self._files is None:
            self._files = self._load()
        return self._files

    def owner(self, name: str) -> str | None:
        made = self.files.get(name)
        return made.owner if made else None

    def used_by(self, owner: str) -> int:
        return sum(m.bytes for m in self.files.values() if m.owner == owner)

    def snapshot(self) -> str:
        return json.dumps({"files": {n: asdict(m) for n, m in sorted(self.files.items())}}, indent=1)

    def write(self, text: str) -> None:
        """Blocking (fsync): call from a worker thread with a ``snapshot()`` taken on the loop."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".pbx-index.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _load(self) -> dict[str, Made]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            return {str(n): Made(str(m["owner"]), int(m["bytes"]), float(m["made"]), float(m.get("seen", 0)))
                    for n, m in doc.get("files", {}).items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            # Unreadable: start empty. Files already there count as the sysadmin's: kept for ever.
            return {}
