"""The history feature's one way to the call journal: pages and CSV batches of a filter's calls
and one call's record, a couple of readers at a time, on a store opened at first use (a page
without a database still serves the rest)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

from aiohttp import web

from ...history.database import open_store
from ...history.records import CallRecord
from ...history.rows import HistoryRow, history_row
from ...history.store import CallFilter, Store
from . import query as hq

READERS = 2  # history reads at once; more wait their turn
CSV_BATCH = 1000  # calls per read of a CSV export: memory stays flat whatever the period holds
CSV_FIRST = 100  # … but the first read is short: the download starts at once


@dataclass
class HistoryReader:
    database_url: str
    voicemail_dir: Path
    readers: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(READERS))
    _store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:  # connects on first use, so a page without a database still serves
            self._store = open_store(self.database_url)
        return self._store

    async def page(self, f: CallFilter, query: hq.Query) -> hq.Page:
        offset = (query.page - 1) * query.per_page
        async with self.readers:
            total, missed = await self.store.count(f, hq.COUNT_CAP)
            calls = await self.store.page(f, query.per_page, offset) if offset < hq.COUNT_CAP else []
        return hq.page_of([history_row(c) for c in calls], query, total, missed)

    async def batches(self, f: CallFilter) -> AsyncIterator[list[HistoryRow]]:
        """Every row the filter keeps, CSV_BATCH at a time; each read waits its turn alone, so an
        export of a long period never keeps the page's other readers out."""
        after, size = None, CSV_FIRST
        while True:
            async with self.readers:
                calls = await self.store.page(f, size, after=after)
            if calls:
                yield [history_row(c) for c in calls]
            if len(calls) < size:
                return
            after, size = (calls[-1].started_at, calls[-1].call_id), CSV_BATCH

    async def call(self, call_id: str) -> CallRecord | None:
        async with self.readers:
            return await self.store.call(call_id)

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None


HISTORY = web.AppKey("pbx_app.web.history", HistoryReader)
