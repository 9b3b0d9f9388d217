"""The journal the app runs with: events spooled to disk and shipped to the database, on SQLite
and a real PostgreSQL. Nothing is lost when the database is away, when the app is killed, or
when a crash tears a line; a journal that cannot write never stops a call."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from pbx_app import observability

from pbx_app.history.codec import decode, encode
from pbx_app.history.events import CallStarted, LegEnded
from pbx_app.history.journal import SpooledJournal, replay
from pbx_app.history.records import fold
from pbx_app.history.spool import SpoolBusy, SpoolReader, segments
from pbx_app.history.database import open_store
from tests.support.wait import until
from tests.unit.test_journal_store import T0, WHOLE_DAY, forwarded_call

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """A function that makes a new, empty database and returns its URL."""
    if request.param == "sqlite":
        names = iter(range(1, 100))
        return lambda: f"sqlite:///{tmp_path}/journal-{next(names)}.db"
    server = request.getfixturevalue("postgres_server")
    return lambda: server.new_database("journal")


async def calls_in(url: str):
    store = open_store(url)
    try:
        return await store.calls(*WHOLE_DAY)
    finally:
        await store.close()


def many_calls(n: int) -> list:
    return [e for i in range(n) for e in forwarded_call(f"call-{i:03d}", i)]


async def test_recorded_events_reach_the_database(database, tmp_path):
    url = database()
    journal = await SpooledJournal(tmp_path / "spool", open_store(url)).start()
    events = many_calls(5)
    for e in events:
        await journal.record(e)
    assert await journal.wait_shipped(10)
    await journal.close()
    assert await calls_in(url) == fold(events)


async def test_many_calls_at_once_share_fsyncs_and_keep_each_call_in_order(database, tmp_path):
    url = database()
    journal = await SpooledJournal(tmp_path / "spool", open_store(url)).start()
    syncs = 0
    real_sync = journal.writer.sync

    def counting(job):
        nonlocal syncs
        syncs += 1
        return real_sync(job)

    journal.writer.sync = counting
    calls = [forwarded_call(f"c{i:03d}", i) for i in range(50)]

    async def one_call(events):
        for e in events:
            await journal.record(e)

    await asyncio.gather(*(one_call(c) for c in calls))
    assert await journal.wait_shipped(20)
    await journal.close()
    print(f"50 concurrent calls, 400 events: {syncs} fsyncs")
    assert syncs < 400, "concurrent events share fsyncs"
    assert await calls_in(url) == fold(e for c in calls for e in c)


async def test_while_the_database_is_away_rows_wait_in_the_spool_then_arrive(postgres_server, tmp_path):
    # A database that does not exist yet: every connection is refused, as in an outage.
    name = f"later_{os.getpid()}"
    url = postgres_server.url(name)
    journal = await SpooledJournal(tmp_path / "spool", open_store(url), retry_min=0.05, retry_max=0.2).start()
    events = forwarded_call()
    for e in events:
        await asyncio.wait_for(journal.record(e), 1)  # a call never waits on the database
    await until(lambda: journal.store_down, 5, "the journal notices the database is away")
    assert not journal.shipped(), "nothing shipped while the database is away"
    with psycopg.connect(postgres_server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    assert await journal.wait_shipped(10), "shipped once the database answers"
    assert not journal.store_down
    await journal.close()
    assert await calls_in(url) == fold(events)


async def test_a_clean_stop_with_the_database_away_keeps_rows_for_the_next_start(database, tmp_path):
    url = database()
    spool = tmp_path / "spool"
    (tmp_path / "blocker").write_text("")
    away = f"sqlite:///{tmp_path}/blocker/journal.db"  # its folder is a file: never opens
    journal = await SpooledJournal(spool, open_store(away), retry_min=0.05).start()
    events = forwarded_call()
    for e in events:
        await journal.record(e)
    await journal.close(timeout=0.5)
    journal = await SpooledJournal(spool, open_store(url)).start()
    assert await journal.wait_shipped(10)
    await journal.close()
    assert await calls_in(url) == fold(events)


KILLED_APP = """
import asyncio, sys
from pbx_app.history.events import CallStarted
from pbx_app.history.journal import SpooledJournal
from pbx_app.history.database import open_store
from tests.unit.test_journal_store import forwarded_call

async def main():
    wait_for = (CallStarted,) if sys.argv[3] == "start" else None
    # A sync interval longer than the test: what is found after the kill was never fsync'd.
    journal = await SpooledJournal(sys.argv[1], open_store(sys.argv[2]), wait_for=wait_for, sync_interval=60).start()
    for e in forwarded_call()[:5]:
        await journal.record(e)
    print("recorded", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.mark.parametrize("waits_for", ["every event", "start"])
async def test_rows_recorded_before_a_kill_are_there_after_the_restart(database, tmp_path, waits_for):
    """An engine waits only for a call's start (wait_for=(CallStarted,)); the legs recorded after
    it were not fsync'd when the app was killed, and are there all the same."""
    url = database()
    spool = tmp_path / "spool"
    (tmp_path / "blocker").write_text("")
    # The killed app could not ship (its database was away): only the spool has the rows.
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_APP, str(spool), f"sqlite:///{tmp_path}/blocker/x.db", waits_for],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "recorded"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    journal = await SpooledJournal(spool, open_store(url)).start()  # its lock died with it
    for e in forwarded_call()[5:]:  # the restarted app finishes the call
        await journal.record(e)
    assert await journal.wait_shipped(10)
    await journal.close()
    assert await calls_in(url) == fold(forwarded_call())


async def test_a_line_torn_by_a_crash_is_set_aside_and_the_rest_is_shipped(database, tmp_path):
    url = database()
    spool = tmp_path / "spool"
    events = forwarded_call()
    journal = await SpooledJournal(spool, open_store(url)).start()
    for e in events[:3]:
        await journal.record(e)
    await journal.close()
    [segment] = segments(spool)
    torn = encode(events[3])[:25]
    with open(spool / f"{segment:08d}.jsonl", "ab") as f:
        f.write(torn)  # power cut in the middle of a write
    journal = await SpooledJournal(spool, open_store(url)).start()
    for e in events[3:]:
        await journal.record(e)
    assert await journal.wait_shipped(10)
    await journal.close()
    assert await calls_in(url) == fold(events), "the torn line was an event written again later"
    assert (spool / "rejected.jsonl").read_bytes() == torn + b"\n"


async def test_segments_roll_over_and_shipped_ones_are_removed(database, tmp_path):
    url = database()
    spool = tmp_path / "spool"
    journal = await SpooledJournal(spool, open_store(url), segment_bytes=2000).start()
    events = many_calls(10)
    for e in events:
        await journal.record(e)
    assert await journal.wait_shipped(10)
    assert journal.writer.segment > 3, "the spool moved on to new segments"
    await until(lambda: segments(spool) == [journal.writer.segment], 5,
                lambda: f"only the segment being written is kept: {segments(spool)}")
    await journal.close()
    assert await calls_in(url) == fold(events)


async def test_a_second_app_on_the_same_spool_is_refused(tmp_path):
    journal = await SpooledJournal(tmp_path / "spool", open_store(f"sqlite:///{tmp_path}/j.db")).start()
    with pytest.raises(SpoolBusy, match="another pbx-app"):
        await SpooledJournal(tmp_path / "spool", open_store(f"sqlite:///{tmp_path}/j.db")).start()
    await journal.close()


async def test_a_failing_disk_never_stops_the_call_and_the_event_lands_later(database, tmp_path):
    url = database()
    journal = await SpooledJournal(tmp_path / "spool", open_store(url), ack_timeout=0.2, retry_min=0.05).start()
    real_write = journal.writer.write
    failures = 3

    def failing(lines):
        nonlocal failures
        if failures:
            failures -= 1
            raise OSError(28, "No space left on device")
        return real_write(lines)

    journal.writer.write = failing
    events = forwarded_call()
    for e in events:
        await asyncio.wait_for(journal.record(e), 1)  # returns although the disk failed
    assert await journal.wait_shipped(10)
    await journal.close()
    assert failures == 0
    assert await calls_in(url) == fold(events)


async def test_history_replays_the_spool_beside_a_running_app_without_doubling(database, tmp_path):
    url = database()
    spool = tmp_path / "spool"
    journal = await SpooledJournal(spool, open_store(url), idle_poll=0.01).start()
    events = many_calls(20)

    async def app_records():
        for e in events:
            await journal.record(e)

    async def history_replays():
        for _ in range(20):
            store = open_store(url)
            await replay(spool, store)
            await store.close()
            await asyncio.sleep(0.005)

    await asyncio.gather(app_records(), history_replays())
    assert await journal.wait_shipped(10)
    await journal.close()
    assert await calls_in(url) == fold(events)


def test_the_spool_format_round_trips_and_reads_newer_lines():
    for event in forwarded_call():
        assert decode(encode(event)) == event
    line = json.loads(encode(LegEnded("c", 1, T0, "busy")))
    line["some_future_field"] = 42
    assert decode(json.dumps(line).encode()) == LegEnded("c", 1, T0, "busy")


def test_the_reader_waits_for_a_line_being_written(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "00000001.jsonl").write_bytes(encode(forwarded_call()[0]) + b'{"v":1,"type":"Leg')
    reader = SpoolReader(spool)
    lines, end = reader.read(reader.start())
    assert len(lines) == 1 and end.offset == len(encode(forwarded_call()[0]))


async def test_an_engine_waits_for_the_disk_only_for_a_calls_start(tmp_path):
    """Engines pass wait_for=(CallStarted,): the rest of a call's story is on its channel and in
    the CDR, so a ringing call never waits on an fsync; every event still lands, in order."""
    url = f"sqlite:///{tmp_path}/journal.db"
    journal = await SpooledJournal(tmp_path / "spool", open_store(url), wait_for=(CallStarted,)).start()
    real_sync = journal.writer.sync

    def sync_slowly(job):
        time.sleep(0.3)  # a busy disk
        return real_sync(job)

    journal.writer.sync = sync_slowly
    start, *rest = forwarded_call()
    loop = asyncio.get_running_loop()
    began = loop.time()
    await journal.record(start)
    assert loop.time() - began >= 0.3, "the call's start is on disk before the call goes on"
    # Then the disk sticks: the legs must not wait for it (a stuck sync would hold each for 30 s).
    stuck = threading.Event()
    journal.writer.sync = lambda job: (stuck.wait(30), real_sync(job))[1]
    for event in rest:
        await asyncio.wait_for(journal.record(event), 10)
    stuck.set()
    assert await journal.wait_shipped(10)
    await journal.close()
    assert await calls_in(url) == fold([start, *rest])


def test_lines_set_aside_never_fill_the_disk(tmp_path, monkeypatch):
    """A damaged spool sets aside line after line: what is kept for a person stays bounded."""
    monkeypatch.setattr("pbx_app.history.spool.REJECTED_BYTES", 1000)
    spool = tmp_path / "spool"
    spool.mkdir()
    reader = SpoolReader(spool)
    for i in range(200):
        reader.reject(b"not an event %03d" % i, "test")
    kept = sorted(p.name for p in spool.iterdir() if p.name.startswith("rejected"))
    assert kept == ["rejected.jsonl", "rejected.jsonl.1"]
    assert sum((spool / name).stat().st_size for name in kept) <= 2000
    assert (spool / "rejected.jsonl").read_bytes().endswith(b"not an event 199\n"), "the latest is kept"


async def test_a_full_spool_disk_keeps_lines_in_memory_in_order_says_so_and_writes_them_when_space_returns(tmp_path):
    """Issue 29's row "the spool disk full for 30 s": calls go on (a call's start does not wait on
    a disk that refuses), /health says the journal waits in memory, and when space returns every
    line is written in the order it was recorded and reaches the database."""
    url = f"sqlite:///{tmp_path}/journal.db"
    journal = await SpooledJournal(tmp_path / "spool", open_store(url), wait_for=(CallStarted,), retry_min=0.05,
                                   disk_retry_max=0.1).start()
    real_write = journal.writer.write
    full = True

    def write(lines):
        if full:
            raise OSError(28, "No space left on device")
        return real_write(lines)

    journal.writer.write = write
    webapp = web.Application()
    observability.setup(webapp, FakeApp(), None, observability.Metrics(), journal)
    client = TestClient(TestServer(webapp))
    await client.start_server()
    try:
        events = many_calls(5)
        loop = asyncio.get_running_loop()
        began = loop.time()
        for e in events:
            await journal.record(e)
        # A start that waited its 2 s on the refusing disk would take 10 s for these five calls.
        assert loop.time() - began < 5, "no call waited on the full disk"
        body = await (await client.get("/health")).json()
        assert body["journal_spool"] == f"cannot write: {len(events)} events wait in memory, in order"
        assert "spool" not in json.dumps(body).replace("journal_spool", ""), "no path for anyone"
        full = False
        await until(lambda: journal.spool_status == "ok", 5, "the lines kept in memory written")
        assert (await (await client.get("/health")).json())["journal_spool"] == "ok"
        reader = SpoolReader(tmp_path / "spool")
        lines, _ = reader.read(reader.start(), max_lines=1000)
        assert [decode(raw) for _, raw in lines] == events, "every line, in the order recorded"
        assert await journal.wait_shipped(10)
    finally:
        await client.close()
        await journal.close()
    assert await calls_in(url) == fold(events)


class FakeApp:
    class events:
        class connected:
            @staticmethod
            def is_set():
                return True

    calls: dict = {}
