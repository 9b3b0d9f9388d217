"""Calls no engine saw: they arrived and ended while none ran (or none claimed them in time), and
the dialplan carried them alone (pbx-app-down). Only Asterisk recorded them, as CDR rows whose
userfield ends in ``:fallback[:dialled]``. The reconciler brings each into the journal, so history
has it as the engines would have written it (missed by the employee, answered by the colleague
after a forward, voicemail).

Why the CDR and not a journal line the dialplan writes: the CDR rows are there already, one per
leg with its disposition and times, kept on the node and shipped to PostgreSQL when it is back
(cdr_ship.py); a line written by the dialplan would be a second record of the same legs, in a
file only the node sees, and lost with a full disk the same way.

Only calls of this journal: the engines put the journal's id (``history_id``, from
PBX_DATABASE_URL) in the plans they write for the dialplan, and so in each leg's userfield; a
site's second pbx_app on the same Asterisk (or a test with its own database) leaves the others'
calls alone. A number with no plan file at all (not in the policy, or no engine has ever run)
rings bare and is not brought in.

Each call is handed on once per process, after its rows have been seen for ``settle`` seconds
(a node's rows may reach PostgreSQL in two batches), and only if the journal's database does not
have it. A call handed on twice (a restart before the journal shipped it, two engines at once)
writes the same rows again: every journal write is an upsert keyed by the call and leg, with
times taken from the CDR, so nothing is doubled."""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime, timedelta
from typing import Callable

from ..db.errors import StoreError
from .cdr import CdrLeg, CdrReader
from .events import CallStarted
from .journal import safe_url
from .store import Store

log = logging.getLogger(__name__)

REASON = "no engine took the call: the dialplan followed the plan the engines last wrote"


def history_id(database_url: str) -> str:
    """A short id of the journal's database: the same for every engine given the same URL (the
    password left out, so changing it keeps the id)."""
    return hashlib.sha256(safe_url(database_url).encode()).hexdigest()[:8]


def started_from(rows: list[CdrLeg]) -> CallStarted:
    """The call's start, from its CDR rows (in leg order): the dialled employee from the legs'
    ``dialled`` field, else the employee's own ring (the dialplan's plain ring of a number with
    no plan), else the first row's dst."""
    first = rows[0]
    dialled = (next((r.dialled for r in rows if r.dialled), "")
               or next((r.who for r in rows if r.role == "employee"), "") or first.dst)
    return CallStarted(first.call_id, first.start or first.end, first.caller, dialled,  # type: ignore[arg-type]
                       first.call_id, (REASON,), first.channel)


class UnseenCalls:
    def __init__(self, cdr: CdrReader, store: Store, history: str, window: timedelta = timedelta(hours=12),
                 settle: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self.cdr = cdr
        self.history = history
        self.store = store
        self.window = window
        self.settle = settle
        self.clock = clock
        self._pending: dict[str, tuple[float, dict[int, CdrLeg]]] = {}  # call → (first seen, its rows by leg)
        self._done: dict[str, float] = {}  # calls handed on or found in the journal → when

    async def due(self, now: datetime) -> list[list[CdrLeg]]:
        """The calls to bring into the journal now, each as its CDR rows in leg order."""
        t = self.clock()
        for row in await self.cdr.fallback_legs(now - self.window):
            if row.history == self.history and row.call_id not in self._done:
                self._pending.setdefault(row.call_id, (t, {}))[1][row.leg] = row
        out = []
        for call_id, (seen, legs) in list(self._pending.items()):
            if t - seen < self.settle:
                continue
            try:
                known = await self.store.call(call_id) is not None
            except StoreError as exc:  # asked again at the next look
                log.warning("cannot look for calls the dialplan carried alone: %s", exc)
                break
            del self._pending[call_id]
            self._done[call_id] = t
            if not known:  # else an engine saw it (or it was brought in before a restart)
                out.append([legs[n] for n in sorted(legs)])
        horizon = t - self.window.total_seconds()
        self._done = {c: at for c, at in self._done.items() if at > horizon}
        return out
