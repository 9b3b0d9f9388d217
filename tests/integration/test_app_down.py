"""Issue 23, items 4 and 6, on real calls: with no engine up at a call's start the dialplan follows
the employee's own plan (their ring time and endpoint, then their forward), from the files the
engines wrote; and a call whose engines all died reads right in history with the settings
scripts/run gives the engines (scripts/testbed env), nothing added."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pbx_app.history.rows import history_row
from pbx_app.history.unseen_calls import history_id
from tests.integration.conftest import ARI_PASSWORD, ARI_URL, ARI_USER, TESTBED, leftovers
from tests.integration.test_history_calls import cdr_of, sqlite_rows
from tests.support.engines import EngineProcess, all_ended, journal_calls
from tests.support.net import free_port
from tests.support.wait import until

# 101 rings 3 s, then goes to 102 (no announcement), who rings up to 6 s.
POLICY = """
employees:
  "101": {name: Ivan Petrov, endpoint: PJSIP/101, ring_time: 3, numbers: ["+7 495 123-45-67"],
          on_no_answer: {action: forward, to: "102", announcement: none}}
  "102": {name: Petr Ivanov, ring_time: 6}
  "103": {name: Anna Smirnova, ring_time: 2, on_no_answer: {action: drop, drop: busy}}
"""


def run_env() -> dict[str, str]:
    """What scripts/run sets for the engines: ARI, and Asterisk's paths seen from the host."""
    out = subprocess.run([str(TESTBED), "env"], capture_output=True, text=True, check=True).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {"PBX_ARI_URL": ARI_URL, "PBX_ARI_USER": ARI_USER, "PBX_ARI_PASSWORD": ARI_PASSWORD, **env}


@pytest.fixture
def engines(asterisk, tmp_path, request):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    base = {**run_env(), "PBX_POLICY": str(policy), "PBX_DATABASE_URL": f"sqlite:///{tmp_path}/journal.db",
            # only timing, so the test is short: the reconciler looks every second
            "PBX_RECONCILE_GRACE": "1", "PBX_SWEEP_INTERVAL": "1"}
    started: list[EngineProcess] = []

    async def start(*names: str) -> list[EngineProcess]:
        new = [EngineProcess(tmp_path, name, base).start() for name in names]
        started.extend(new)
        for engine in new:
            await engine.healthy()
        return new

    start.base = base
    yield start
    for engine in started:
        engine.stop()
    # Later tests of the session expect the plain no-engine ring for these numbers.
    shutil.rmtree(base["PBX_FALLBACK_DIR"], ignore_errors=True)


async def caller_channel(ari) -> dict:
    found: list[dict] = []

    async def ringing() -> bool:
        found[:] = [c for c in await ari.get("/channels") if c["name"].startswith("PJSIP/client")]
        return bool(found)

    await until(ringing, 5, "no caller channel in Asterisk")
    return found[0]


async def test_no_engine_at_the_start_the_dialplan_rings_the_employee_their_ring_time_then_forwards(engines, ari, sip):
    plans = Path(engines.base["PBX_FALLBACK_DIR"])
    [engine] = await engines("a")
    await until(lambda: (plans / "101").exists(), 10, "the engine wrote no plan for 101")
    engine.stop()  # no engine at all now; the plans stay
    employee = sip.phone("101", "ring_forever")
    colleague = sip.phone("102", "answer", answer_delay_ms=300)
    caller = sip.call("101", talk_ms=1000)
    channel = await caller_channel(ari)
    assert await caller.wait(30) == 0
    [invite] = employee.received("INVITE")
    [cancel] = employee.received("CANCEL")
    first_ring = (cancel.at - invite.at).total_seconds()
    assert 2.5 <= first_ring <= 5, f"101 rang {first_ring:.1f} s: their ring time is 3 s"
    assert colleague.received("INVITE") and caller.received(200), "forwarded to 102 as 101's policy says"
    rows = await cdr_of(channel["id"], 2, read=sqlite_rows)
    assert [(r.dst, r.disposition) for r in rows] == [("101", "NO ANSWER"), ("102", "ANSWERED")]
    journal = history_id(engines.base["PBX_DATABASE_URL"])
    assert [r.userfield for r in rows] == [f"{channel['id']}:1:employee:101:fallback:101:{journal}",
                                           f"{channel['id']}:2:forward:102:fallback:101:{journal}"]
    channels, _ = await leftovers(ari)
    assert not channels


async def test_calls_carried_with_no_engine_reach_history_once_an_engine_is_back(engines, ari, sip):
    """Issue 29: the dialplan's fallback calls were only in the CDR; an engine back brings them in."""
    plans = Path(engines.base["PBX_FALLBACK_DIR"])
    [engine] = await engines("a")
    await until(lambda: (plans / "101").exists() and (plans / "103").exists(), 10, "the engine wrote no plans")
    engine.stop()
    employee = sip.phone("101", "ring_forever")
    colleague = sip.phone("102", "answer", answer_delay_ms=300)
    forwarded = sip.call("101", talk_ms=500)
    other = sip.phone("103", "ring_forever")
    missed = sip.call("103", talk_ms=500, caller="79007654321")
    assert await forwarded.wait(30) == 0 and await missed.wait(30) == 0
    assert colleague.received("INVITE") and employee.received("INVITE") and other.received("INVITE")
    assert await journal_calls(engines.base["PBX_DATABASE_URL"]) == [], "no engine saw them"

    await engines("a")
    calls = await all_ended(engines.base["PBX_DATABASE_URL"], 2)
    rows = {row.caller: row for row in map(history_row, calls)}
    assert len(calls) == 2, calls
    answered, plain = rows["79001234567"], rows["79007654321"]
    assert (answered.employee, answered.status, answered.forwarded_from) == ("102", "answered", "101"), answered
    assert "forwarded to 102, answered by 102" in answered.what_happened, answered
    assert (plain.employee, plain.status) == ("103", "missed"), plain
    assert plain.what_happened.startswith("no answer"), plain


async def test_no_engine_a_company_number_from_the_carrier_follows_its_owners_plan(engines, ari, sip):
    plans = Path(engines.base["PBX_FALLBACK_DIR"])
    [engine] = await engines("a")
    await until(lambda: (plans / "84951234567").exists(), 10, "the engine wrote no plan for the company number")
    engine.stop()
    employee = sip.phone("101", "ring_forever")
    colleague = sip.phone("102", "answer", answer_delay_ms=300)
    caller = sip.carrier_call("84951234567", talk_ms=500)
    assert await caller.wait(30) == 0
    [invite] = employee.received("INVITE")
    [cancel] = employee.received("CANCEL")
    assert 2.5 <= (cancel.at - invite.at).total_seconds() <= 5, "101's own ring time, 3 s"
    assert colleague.received("INVITE") and caller.received(200), "forwarded to 102 as 101's policy says"


async def test_fastagi_server_down_the_dialplan_follows_the_plan_it_last_wrote(engines, ari, sip, tmp_path, request):
    plans = Path(engines.base["PBX_FALLBACK_DIR"])
    (plans / "101").unlink(missing_ok=True)
    # The FastAGI server writes the plans too; it listens elsewhere than Asterisk asks, and is then stopped.
    server = EngineProcess(tmp_path, "agi", {**engines.base, "PBX_AGI_BIND": f"127.0.0.1:{free_port()}"}, command="agi")
    request.addfinalizer(server.stop)
    await server.start().healthy()
    await until(lambda: (plans / "101").exists(), 10, "the FastAGI server wrote no plan for 101")
    server.stop()
    employee = sip.phone("101", "ring_forever")
    colleague = sip.phone("102", "answer", answer_delay_ms=300)
    caller = sip.call("101", talk_ms=500, source_ip="127.0.0.4")  # the test bed's FastAGI-mode caller
    assert await caller.wait(30) == 0
    [invite] = employee.received("INVITE")
    [cancel] = employee.received("CANCEL")
    assert 2.5 <= (cancel.at - invite.at).total_seconds() <= 5, "101's own ring time, 3 s"
    assert colleague.received("INVITE") and caller.received(200)


async def test_both_engines_killed_at_the_ring_timeout_history_reads_right_with_default_settings(engines, ari, sip):
    both = await engines("a", "b")
    employee = sip.phone("101", "ring_forever")
    colleague = sip.phone("102", "answer", answer_delay_ms=300)
    caller = sip.call("101", talk_ms=1000)
    await until(lambda: employee.received("INVITE"), 5, "101 never rang")
    await until(lambda: employee.received("CANCEL"), 8, "101's ring never timed out")
    for engine in both:
        engine.kill()  # at the ring timeout: the caller is back in the dialplan, no engine to take it
    assert await caller.wait(30) == 0
    assert colleague.received("INVITE") and caller.received(200), "the dialplan forwarded to 102, who answered"

    await engines("a")  # restarted after the crash: the call left in progress is ended from the CDR
    [call] = await all_ended(engines.base["PBX_DATABASE_URL"], 1)
    row = history_row(call)
    assert (row.employee, row.status) == ("102", "answered"), row
    assert "answered by 102" in row.what_happened and row.what_happened.endswith("while the app was down"), row
    assert "caller hung up" not in row.what_happened
