"""Issue 32 through the real Asterisk: `pbx-app agi` (its own process, as installed) under a
flood of 400 connections from an allowed address still serves a real call, and its memory stays
within 50 MB of where it was and comes back afterwards. The flood is the worst a peer can send
now: lines just under the line limit, as fast as the server reads them, reconnecting as soon as
it is closed. Before issue 32, 400 such peers took the server from 72 MB to 1.75 GB, for good."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pbx_app.agi.protocol import MAX_LINE
from pbx_app.history.rows import history_row
from tests.support.engines import EngineProcess, all_ended
from tests.support.wait import until

from .conftest import leftovers
from .test_agi_calls import AGI_CALLER_IP, SECRET_FILE
from .test_history_calls import POLICY

FLOOD = 400
MB = 1024 * 1024


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def flood(port: int, stop: asyncio.Event, sent: list[int]) -> None:
    line = b"agi_arg_9: " + b"x" * (MAX_LINE - 20) + b"\n"
    while not stop.is_set():
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        try:
            while not stop.is_set():
                writer.write(line)
                await writer.drain()
                sent[0] += len(line)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


async def test_a_flood_of_400_connections_costs_under_50_mb_and_a_real_call_is_served(asterisk, ari, sip, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    url = f"sqlite:///{tmp_path}/journal.db"
    server = EngineProcess(tmp_path, "agi", {"PBX_DATABASE_URL": url, "PBX_POLICY": str(policy),
                                             "PBX_USERS": str(tmp_path / "users.json"),
                                             "PBX_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
                                             "PBX_AGI_SECRET_FILE": str(SECRET_FILE)}, command="agi")
    server.env.pop("PBX_ARI_PASSWORD", None)
    try:
        await server.start().healthy()
        pid = server.proc.pid
        await asyncio.sleep(0.5)
        before = rss(pid)
        stop, sent, peak = asyncio.Event(), [0], [before]
        flooders = [asyncio.create_task(flood(4573, stop, sent)) for _ in range(FLOOD)]

        async def watch() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss(pid))
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        try:
            await until(lambda: sent[0] > 100 * MB, 30, lambda: f"the flood sent {sent[0] // MB} MB", every=0.1)
            colleague = sip.phone("102", "answer", answer_delay_ms=300)
            caller = sip.call("102", talk_ms=500, source_ip=AGI_CALLER_IP)
            assert await caller.wait(30) == 0
        finally:
            stop.set()
            await asyncio.gather(*flooders, watcher)
        assert colleague.sent(200), "102 answered, the flood notwithstanding"
        [record] = await all_ended(url, 1, timeout=10)
        row = history_row(record)
        assert (row.employee, row.status) == ("102", "answered"), "the call was served by the server, not the fallback"

        started = time.monotonic()
        await until(lambda: rss(pid) < before + 10 * MB, 10, lambda: f"RSS back from {rss(pid) // MB} MB", every=0.2)
        print(f"\nFastAGI flood: {FLOOD} connections, {sent[0] // MB} MB sent; RSS {before / MB:.1f} MB before, "
              f"peak {peak[0] / MB:.1f} MB (+{(peak[0] - before) / MB:.1f}), {rss(pid) / MB:.1f} MB "
              f"{time.monotonic() - started:.1f} s after")
        assert peak[0] - before < 50 * MB
        assert server.log().count("FastAGI: refused 127.0.0.1") <= 2, "one line a minute, not one per connection"
    finally:
        server.stop()
    channels, _ = await leftovers(ari)
    assert not channels
