"""The journal the app runs with: every event is appended to the local spool, and a shipper
task replays the spool into the database behind it.

Why a spool and not straight to the database: the database may be slow or down (PostgreSQL
restarting, a locked SQLite file) and a call must not wait on it or lose its row. The spool is
a local file; what the database has not taken yet stays there and is shipped at the next start
or as soon as the database answers again.

When an event is safe:
- ``record`` writes its line to the spool file before it returns, on the event loop (a write()
  into the page cache, a few µs): from then on the line outlives the app, killed or crashed.
- One thread fsyncs, at most ``sync_interval`` after a write, one fsync for all written since:
  from then on the line outlives the machine too.
- The events in ``wait_for`` (the engines': a call's CallStarted) are fsync'd before ``record``
  returns; the calls waiting at the same moment share one fsync.
A machine crash can therefore take the last ``sync_interval`` of other events; they are also on
the channel and in Asterisk's CDR, which the reconciler rebuilds history from. Writing every
event on the thread and fsyncing it (as this journal did) cost ~0.6 ms of CPU a call in fsyncs
and thread hops (bench/README.md).

``record`` never raises: if the disk fails, events wait in memory, in order, and the thread
retries."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..backoff import Backoff
from ..db.errors import StoreError
from .codec import BadLine, decode, encode
from .database import open_store
from .events import JournalEvent
from .spool import DEFAULT_SEGMENT_BYTES, Position, SpoolReader, SpoolWriter, spool_id
from .store import Store
from ..waiting import set_within

log = logging.getLogger(__name__)

_UNKNOWN = object()


class Shipper:
    """Replays a spool into the store from the position the store holds for it. The app runs
    one; `pbx-app history` runs one too, to show rows the app has not shipped yet — the store's
    transaction on the position keeps two of them from applying a batch twice."""

    def __init__(self, reader: SpoolReader, store: Store, io: ThreadPoolExecutor, spool: str = ""):
        self.reader = reader
        self.store = store
        self.io = io
        self.spool = spool
        self.position = Position(0, 0)
        self._known: object = _UNKNOWN  # the position the database holds for this spool

    async def ship_once(self) -> bool:
        """Ships the next batch of spooled lines; False when there was nothing to ship."""
        loop = asyncio.get_running_loop()
        if self._known is _UNKNOWN:
            self._known = await self.store.position(self.spool)
            self.position = self._known or self.reader.start()  # type: ignore[assignment]
        lines, end = await loop.run_in_executor(self.io, self.reader.read, self.position)
        if not lines:
            self.position = end
            return False
        events = []
        for _, raw in lines:
            try:
                events.append(decode(raw))
            except BadLine as exc:
                await loop.run_in_executor(self.io, self.reader.reject, raw, str(exc))
        stored = await self.store.ship(self.spool, self._known, events, end)  # type: ignore[arg-type]
        if stored != end:  # another process shipped this spool meanwhile: go on from where it got
            self._known = stored
            self.position = stored or self.reader.start()
            return True
        self._known = self.position = end
        await loop.run_in_executor(self.io, self.reader.remove_shipped, end)
        return True


async def replay(spool_dir: Path, store: Store) -> int:
    """Ships whatever the spool at ``spool_dir`` holds that the store lacks; the number of
    batches. Nothing to do when there is no spool there."""
    spool = spool_id(Path(spool_dir))
    if spool is None:
        return 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-replay") as io:
        shipper = Shipper(SpoolReader(Path(spool_dir)), store, io, spool)
        batches = 0
        while await shipper.ship_once():
            batches += 1
        return batches


class SpooledJournal:
    def __init__(
        self,
        spool_dir: Path,
        store: Store,
        *,
        ack_timeout: float = 2.0,  # longest a call waits on a sick disk before it goes on
        idle_poll: float = 1.0,
        # Shipping waits this long after new lines arrive so one commit takes many calls' events:
        # a commit per event batch was over half of the app's CPU per call under load (bench/).
        ship_interval: float = 0.25,
        retry_min: float = 0.5,
        # The database is tried again at least this often: each engine ships its own spool, and
        # the reconciler (grace 10 s) must not end a call from the CDR while another engine's
        # rows of it still wait for their retry after an outage.
        retry_max: float = 5.0,
        # A full spool disk is tried again this often at most: lines wait in memory meanwhile,
        # and a write that fails costs a few µs, so space that returns is used within seconds.
        disk_retry_max: float = 2.0,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        # The events whose record() waits for the fsync; None: all. The engines wait only for a
        # call's CallStarted (see above), so a ringing call never waits on the disk.
        wait_for: tuple[type, ...] | None = None,
        sync_interval: float = 0.2,
    ):
        self.spool_dir = Path(spool_dir)
        self.store = store
        self.ack_timeout = ack_timeout
        self.idle_poll = idle_poll
        self.ship_interval = ship_interval
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.disk_retry_max = disk_retry_max
        self.wait_for = wait_for
        self.sync_interval = sync_interval
        self.writer = SpoolWriter(self.spool_dir, segment_bytes)
        self.reader = SpoolReader(self.spool_dir)
        self._write_io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-spool")
        self._read_io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-ship")
        self._recorded = 0  # lines recorded so far, counted from the start
        self._synced = 0  # … of which fsync'd
        self._backlog: deque[bytes] = deque()  # lines the disk refused, in order, retried by the thread
        self._waiting: deque[tuple[int, asyncio.Future]] = deque()  # (line number, its fsync)
        self._wake_syncer = asyncio.Event()
        self._wake_shipper = asyncio.Event()
        self._written = Position(0, 0)  # the end of what is on disk
        self._shipped = Position(0, 0)  # the end of what the database has
        self.shipper = Shipper(self.reader, store, self._read_io)
        self._tasks: list[asyncio.Task] = []
        self.store_down = False
        self.disk_failing = False  # the spool refused a write since the last good one

    async def start(self) -> "SpooledJournal":
        """Opens the spool (raises SpoolBusy or OSError: the app should not start without its
        journal) and starts writing and shipping."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._write_io, self.writer.open)
        self._written = self.writer.position
        self.shipper.spool = self.writer.id
        self._tasks = [
            asyncio.create_task(self._sync_loop(), name="journal-sync"),
            asyncio.create_task(self._ship_loop(), name="journal-shipper"),
        ]
        log.info("journal: spool %s (id %s) → %s", self.spool_dir, self.writer.id, safe_url(self.store.url))
        return self

    # ---- the Journal protocol ---------------------------------------------------------------

    async def record(self, event: JournalEvent) -> None:
        try:
            line = encode(event)
        except Exception:
            log.exception("journal: cannot encode %r", event)
            return
        self._write(line)
        if self.wait_for is not None and not isinstance(event, self.wait_for):
            return
        if self._backlog:  # the disk refuses lines: waiting ack_timeout on it would only delay the call
            return
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((self._recorded, done))
        self._wake_syncer.set()
        try:
            await asyncio.wait_for(asyncio.shield(done), self.ack_timeout)
        except TimeoutError:
            log.warning("journal: the spool disk is slow; %s of call %s is queued", type(event).__name__, event.call_id)

    @property
    def spool_status(self) -> str:
        """For /health: counts only, no path or error text (the log has those)."""
        if self._backlog:
            return f"cannot write: {len(self._backlog)} events wait in memory, in order"
        return "ok"

    # ---- writing ----------------------------------------------------------------------------

    def _write(self, line: bytes) -> None:
        self._recorded += 1
        if not self._backlog:  # once a line waits in memory, the ones after it wait behind it
            try:
                self._written = self.writer.write([line])
                self._wake_shipper.set()
                return
            except OSError as exc:
                if not self.disk_failing:
                    log.error("journal: cannot write the spool %s (%s); events wait in memory, retrying",
                              self.spool_dir, exc)
                self.disk_failing = True
        self._backlog.append(line)
        self._wake_syncer.set()

    async def _sync_loop(self) -> None:
        """Writes what waits in memory and fsyncs what is written, on the spool's thread."""
        loop = asyncio.get_running_loop()
        retry = Backoff(self.retry_min, max(self.retry_min, self.disk_retry_max))
        while True:
            await set_within(self._wake_syncer, self.sync_interval)
            self._wake_syncer.clear()
            if self._synced == self._recorded:
                continue
            try:
                if self._backlog:
                    batch = list(self._backlog)
                    self._written = await loop.run_in_executor(self._write_io, self.writer.write, batch)
                    for _ in batch:
                        self._backlog.popleft()
                    self._wake_shipper.set()
                in_file = self._recorded - len(self._backlog)  # lines, as _recorded counts them
                job = self.writer.unsynced()
                try:
                    await loop.run_in_executor(self._write_io, self.writer.sync, job)
                except OSError:
                    self.writer.give_back(job)
                    raise
            except OSError as exc:
                if not self.disk_failing:
                    log.error("journal: cannot write the spool %s (%s); %d events wait in memory, retrying",
                              self.spool_dir, exc, len(self._backlog))
                self.disk_failing = True
                await asyncio.sleep(retry.next())
                self._wake_syncer.set()
                continue
            retry.reset()
            if self.disk_failing and not self._backlog:
                log.info("journal: the spool %s takes lines again; those kept in memory are written", self.spool_dir)
                self.disk_failing = False
            self._synced = in_file
            while self._waiting and self._waiting[0][0] <= in_file:
                _, done = self._waiting.popleft()
                if not done.done():
                    done.set_result(None)
            if self._backlog:
                self._wake_syncer.set()

    # ---- shipping ---------------------------------------------------------------------------

    async def _ship_loop(self) -> None:
        retry = Backoff(self.retry_min, self.retry_max)
        while True:
            try:
                shipped_any = await self.ship_once()
            except StoreError as exc:
                if not self.store_down:
                    log.error("journal: the database is not taking rows (%s); they stay in the spool, retrying", exc)
                self.store_down = True
                await asyncio.sleep(retry.next())
                continue
            except Exception:
                log.exception("journal: shipping failed; retrying")
                await asyncio.sleep(retry.next())
                continue
            if self.store_down:
                log.info("journal: the database is back; the spool is replayed into it")
                self.store_down = False
            retry.reset()
            if not shipped_any:
                await set_within(self._wake_shipper, self.idle_poll)
                self._wake_shipper.clear()
            if self.shipper.position == self._written:  # caught up: let the next batch gather
                await asyncio.sleep(self.ship_interval)

    async def ship_once(self) -> bool:
        shipped = await self.shipper.ship_once()
        self._shipped = self.shipper.position
        return shipped

    # ---- lifecycle --------------------------------------------------------------------------

    def shipped(self) -> bool:
        return not self._backlog and self._shipped >= self._written

    async def wait_shipped(self, timeout: float = 10.0) -> bool:
        """True once everything recorded so far is in the database."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.shipped():
            if loop.time() > deadline:
                return False
            self._wake_shipper.set()
            await asyncio.sleep(0.02)
        return True

    async def close(self, timeout: float = 3.0) -> None:
        """A clean stop: writes what is queued, ships what it can in ``timeout``; the rest stays
        in the spool for the next start."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._synced < self._recorded and loop.time() < deadline:
            self._wake_syncer.set()
            await asyncio.sleep(0.02)
        if self._backlog:
            log.error("journal: %d events could not be written to the spool before the stop", len(self._backlog))
        await self.wait_shipped(max(0.0, deadline - loop.time()))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await loop.run_in_executor(self._write_io, self.writer.close)
        self._write_io.shutdown(wait=True)
        self._read_io.shutdown(wait=True)
        try:
            await self.store.close()
        except Exception:
            log.exception("journal: closing the database")


def safe_url(url: str) -> str:
    """The URL without a password, for the log."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url


async def open_journal(database_url: str, spool_dir: Path, wait_for: tuple[type, ...] | None = None) -> SpooledJournal:
    """The journal for the running app, from its settings."""
    return await SpooledJournal(Path(spool_dir), open_store(database_url), wait_for=wait_for).start()
