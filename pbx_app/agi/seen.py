"""Call ids already journalled: a `call` request for one of them is refused, so nothing can
replace a real call's history row by reusing its id (issue 32)."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Awaitable, Callable

log = logging.getLogger(__name__)

Lookup = Callable[[str], Awaitable[object | None]]


class SeenCalls:
    """The ids this server started (kept in memory: the journal's database gets them a moment
    later) and, through ``lookup``, those in the database, which other servers write too. A
    database that does not answer within ``timeout`` lets the call go on: the memory check
    still holds, and a call must not wait on a sick database."""

    def __init__(self, lookup: Lookup | None = None, remember: int = 20_000, timeout: float = 1.0):
        self.lookup = lookup
        self.remember = remember
        self.timeout = timeout
        self.recent: OrderedDict[str, None] = OrderedDict()

    async def seen(self, call_id: str) -> bool:
        """Whether ``call_id`` is taken; if not, it is from now on."""
        if call_id in self.recent:
            return True
        self.recent[call_id] = None  # before awaiting: a second request for it must see it
        while len(self.recent) > self.remember:
            self.recent.popitem(last=False)
        if self.lookup is None:
            return False
        try:
            return await asyncio.wait_for(self.lookup(call_id), self.timeout) is not None
        except Exception as exc:  # noqa: BLE001 - the database is the journal's problem, not the call's
            log.warning("FastAGI: cannot look call %s up in the journal (%s); taking it as new", call_id,
                        exc or type(exc).__name__)
            return False
