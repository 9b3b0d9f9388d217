"""Issue 29, short: a few real calls through scripts/cluster (Kamailio, nodes a and b, two engines,
PostgreSQL) while one fault is injected; then what the callers got and what the records hold.
bench/faults runs the same faults under steady traffic (docs/reliability.md)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import time
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import psycopg
import pytest

from pbx_app.history.rows import history_row
from tests.support import wait
from tests.support.cluster import calls_since, ended_since, engines_health, node_of, now, running_cluster
from tests.support.cluster import sip  # noqa: F401  (a fixture)

POLICY = """
employees:
  "101": {name: Ivan Petrov, ring_time: 2, on_no_answer: {action: forward, to: "102", announcement: none}}
  "102": {name: Petr Ivanov, ring_time: 5}
"""
CL = Path(os.environ.get("PBX_TESTBED_CACHE", "/var/cache/pbx_app")) / "cluster"
SPOOL = CL / "faults-test-spool"  # a small tmpfs: the spool disk that fills


@pytest.fixture(scope="module")
def cluster(asterisk, tmp_path_factory):
    policy = tmp_path_factory.mktemp("faults") / "policy.yaml"
    policy.write_text(POLICY)

    def mount() -> None:
        SPOOL.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(SPOOL)], check=True)

    # A grace of 5 s (as in production, longer than the journals' 2 s retry on a full disk):
    # a call whose events wait in one engine's memory is not ended from the CDR meanwhile.
    with running_cluster(asterisk, policy, before=mount, after=lambda: subprocess.run(["umount", str(SPOOL)]),
                         PBX_NODE_LOST_AFTER="10", PBX_RECONCILE_GRACE="5",
                         PBX_CLUSTER_SPOOL_DIR=str(SPOOL / "spool")) as running:
        yield running


def node_cdr(since: datetime) -> set[tuple[str, int]]:
    """The CDR rows the nodes wrote on their own disks since ``since``: what PostgreSQL must get."""
    out = set()
    local = (since - timedelta(seconds=1)).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    for node in ("a", "b"):
        path = CL / f"node-{node}" / "log" / "master.db"
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            out |= {(u, int(s)) for u, s in db.execute("SELECT uniqueid, sequence FROM cdr WHERE calldate >= ?", (local,))}
        finally:
            db.close()
    return out


def pg_cdr(url: str, since: datetime) -> set[tuple[str, int]]:
    with psycopg.connect(url, connect_timeout=5) as conn:
        return set(conn.execute("SELECT uniqueid, sequence FROM cdr WHERE calldate >= %s", (since - timedelta(seconds=2),)))


# The project's own wait, at the pace these checks used (each may read the database or the nodes).
until = partial(wait.until, every=0.2)


async def test_postgresql_away_loses_no_journal_row_and_no_cdr_row(cluster, sip):
    since = now()
    employee, colleague, callers = sip.burst("101", calls=6, rate=2)
    await asyncio.sleep(0.5)
    cluster.run("pg-stop")
    try:
        assert await callers.wait(40) == 0, "every call answered as without the fault"
    finally:
        cluster.run("pg-start")
    calls = await ended_since(cluster.database_url, since, 6, timeout=30)
    assert [history_row(c).what_happened for c in calls] == ["no answer; forwarded to 102, answered by 102"] * 6
    local = node_cdr(since)
    assert len(local) == 12, "two legs a call, on the nodes' own disks"
    await until(lambda: local <= pg_cdr(cluster.database_url, since), 15, "the CDR PostgreSQL missed is shipped")


async def test_a_node_killed_costs_only_its_calls_which_end_as_lost_with_it(cluster, sip):
    sip.phone("102", "answer", answer_delay_ms=100, calls=3)  # registered with both nodes
    since = now()
    talking = [sip.call("102", talk_ms=12000), sip.call("102", talk_ms=12000)]
    await until(lambda: all(t.sent("ACK") for t in talking), 15, "both calls answered")
    calls = await until(lambda: _open_on_both(cluster, since), 10, "one call in progress on each node")
    pid = next(line.split("pid ")[1].split()[0] for line in cluster.run("status", check=False).stdout.splitlines()
               if line.startswith("node a:"))
    killed = time.monotonic()
    os.kill(int(pid), signal.SIGKILL)
    try:
        await until(lambda: "a" not in cluster.active_nodes(), 5, "Kamailio took node a out")
        took_out = time.monotonic() - killed
        # The call on node b ends normally; node a's caller waits for an answer to its BYE that
        # never comes (SIPp keeps retrying: it is stopped at the end of the test).
        ended = await until(lambda: [t for t in talking if t.proc.poll() is not None], 30, "the call on node b ended")
        assert [t.proc.returncode for t in ended] == [0], "only node b's call ended, normally"
        after = now()
        assert await sip.call("102", talk_ms=300).wait(20) == 0, "a new call is answered (on b)"
        [new] = await ended_since(cluster.database_url, after, 1)
        assert node_of(new) == "b"
        lost = await until(lambda: _ended(cluster, calls, "a"), 40, "node a's call ended though a never came back")
        assert (lost.result, lost.detail) == ("failed", "lost with node a")
        assert history_row(lost).what_happened.endswith("lost with node a")
        # The issue asks 2 s; what it takes under load is bench/faults' figure, not a timed test's:
        # here, only that Kamailio does take the node out (its probes are 1 s apart).
        assert took_out < 10
    finally:
        cluster.node("a", "start")
        await until(cluster.all_in_service, 30, "node a back in service, the engines on it")


async def _open_on_both(cluster, since):
    calls = [c for c in await calls_since(cluster.database_url, since) if c.result is None]
    return calls if sorted(node_of(c) for c in calls) == ["a", "b"] else None


async def _ended(cluster, calls, node):
    [call] = [c for c in calls if node_of(c) == node]
    now_ = [c for c in await calls_since(cluster.database_url, call.started_at) if c.call_id == call.call_id]
    return now_[0] if now_ and now_[0].result is not None else None


async def test_kamailio_restarted_calls_in_progress_end_normally_and_new_calls_are_answered(cluster, sip):
    sip.phone("102", "answer", answer_delay_ms=100, calls=2)
    since = now()
    talking = sip.call("102", talk_ms=5000)
    await until(lambda: talking.sent("ACK") or talking.received(200), 10, "the call is answered")
    cluster.run("kamailio-restart")
    assert await talking.wait(20) == 0, "the call kept going and its BYE got through the new Kamailio"
    assert await sip.call("102", talk_ms=300).wait(20) == 0, "a new call after the restart is answered"
    calls = await ended_since(cluster.database_url, since, 2)
    assert [history_row(c).status for c in calls] == ["answered", "answered"]


async def test_a_full_spool_disk_keeps_calls_going_and_the_journal_in_memory_until_space_returns(cluster, sip):
    filler = SPOOL / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"], capture_output=True)
    since = now()
    try:
        # Enough calls that each engine's lines outgrow the last page its spool file already has.
        employee, colleague, callers = sip.burst("101", calls=8, rate=4)
        said = await until(lambda: _spools_waiting(), 20, "/health says the journal waits in memory")
        assert all(s.endswith("events wait in memory, in order") for s in said if s != "ok"), said
        assert await callers.wait(30) == 0, "calls go on with a full spool disk"
        assert all(h["status"] == "ok" for h in await engines_health())
    finally:
        filler.unlink(missing_ok=True)
    await until(lambda: _spools_ok(), 10, "the lines kept in memory written once space returned")
    calls = await ended_since(cluster.database_url, since, 8, timeout=20)
    assert [history_row(c).what_happened for c in calls] == ["no answer; forwarded to 102, answered by 102"] * 8


async def _spools_ok() -> bool:
    return all(h["journal_spool"] == "ok" for h in await engines_health())


async def _spools_waiting() -> list[str] | None:
    said = [h["journal_spool"] for h in await engines_health()]
    return said if any(s.startswith("cannot write: ") for s in said) else None


async def test_all_engines_killed_the_calls_the_dialplan_carried_reach_history_once_they_are_back(cluster, sip):
    """The dialplan follows 101's plan with no engine (ring, then forward to 102); the call is only
    in the CDR (shipped to PostgreSQL) until an engine is back and brings it into history."""
    cluster.kill_engines()
    since = now()
    try:
        sip.phone("101", "ring_forever")
        colleague = sip.phone("102", "answer", answer_delay_ms=300)
        caller = sip.call("101", talk_ms=500)
        assert await caller.wait(30) == 0 and colleague.received("INVITE"), "the dialplan forwarded to 102"
    finally:
        cluster.start_engines()
    [call] = await ended_since(cluster.database_url, since, 1, timeout=30)
    row = history_row(call)
    assert (row.employee, row.status, row.forwarded_from) == ("102", "answered", "101"), row
    assert row.what_happened.endswith("while the app was down"), row


def _engine_pids() -> list[int]:
    """`pbx-app run`'s engine children (not the web page)."""
    run = int((CL / "app" / "run.pid").read_text())
    children = (Path(f"/proc/{run}/task/{run}/children").read_text()).split()
    return [int(p) for p in children if b" engine" in Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")]


def _from_user(text: str) -> str:
    m = re.search(r"^From:[^<\n]*<sip:([^@>]+)@", text, re.MULTILINE)
    return m.group(1) if m else ""


async def test_a_frozen_engines_callers_are_moved_on_within_3_s_and_it_wakes_without_acting_on_them(cluster, sip):
    [frozen, *_] = _engine_pids()
    since = now()
    employee, colleague, callers = sip.burst("101", calls=8, rate=4)
    await asyncio.sleep(1.2)  # both engines have claimed callers, 101 rings for them
    os.kill(frozen, signal.SIGSTOP)  # its callers come back to it from the ring and wait there
    try:
        assert await callers.wait(40) == 0, "every call answered by 102 after 101's ring"
        await asyncio.sleep(1)
    finally:
        os.kill(frozen, signal.SIGCONT)
    # Per caller: from 101's ring ending (its CANCEL) to 102 ringing. A caller the frozen engine
    # held waits for another engine to move it on; none may wait 3 s.
    rang_out = {_from_user(m.text): m.at for m in employee.received("CANCEL")}
    forwarded = {_from_user(m.text): m.at for m in colleague.received("INVITE")}
    waits = [(forwarded[who] - rang_out[who]).total_seconds() for who in rang_out.keys() & forwarded.keys()]
    assert len(waits) == 8 and max(waits) < 3, waits
    await asyncio.sleep(4)  # the woken engine gets what it missed
    assert len(colleague.received("INVITE")) == 8, "the woken engine rang 102 for none of the callers again"
    assert not [c for c in await calls_since(cluster.database_url, since) if c.result is None], "none left in progress"
    # Each call's start too (the frozen engine wrote some: it ships them once awake), so history has all 8.
    ended = await ended_since(cluster.database_url, since, 8, timeout=15)
    assert all(c.caller and c.extension == "101" for c in ended), ended
