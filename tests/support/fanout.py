"""Each journal event to several journals: a test's MemoryJournal beside the real journal the
app writes, so a test can wait on the one and read the other back."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pbx_app.history.events import JournalEvent

log = logging.getLogger(__name__)


@dataclass
class Fanout:
    journals: list = field(default_factory=list)

    async def record(self, event: JournalEvent) -> None:
        for journal in self.journals:
            try:
                await journal.record(event)
            except Exception:
                log.exception("journal %r failed", journal)
