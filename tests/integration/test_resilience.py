"""Issue 7: no call is lost when Asterisk fails. An engine runs as its own process
(`python -m pbx_app engine`); Asterisk is restarted under it; bad credentials give a clear error;
a burst of calls leaves nothing behind; an engine past its limit leaves calls to the dialplan.
(Engines killed mid-call: test_engines.py.)"""

from __future__ import annotations

import asyncio
import re

from pbx_app.ari import AriClient
from pbx_app.history.events import CallEnded, CallStarted
from tests.integration.conftest import ARI_PASSWORD, ARI_URL, ARI_USER, leftovers
from tests.support.engines import EngineProcess
from tests.support.net import free_port
from tests.support.wait import until


# 101 rings out and is forwarded to 102 without an announcement; 104 says a standard announcement
# first (4.6 s); 103 is rung by the dialplan fallback while the app is down.
POLICY = """
employees:
  "101": {name: Ivan Petrov, endpoint: PJSIP/101, ring_time: 4,
          on_no_answer: {action: forward, to: "102", announcement: none}}
  "102": {name: Petr Ivanov, endpoint: PJSIP/102, ring_time: 10}
  "103": {name: Anna Smirnova, endpoint: PJSIP/103, ring_time: 10}
  "104": {name: Olga Kuznetsova, endpoint: PJSIP/101, ring_time: 2,
          on_no_answer: {action: forward, to: "102", announcement: standard}}
"""


def app_process(tmp_path, request, **env) -> EngineProcess:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    engine = EngineProcess(tmp_path, "1", {
        "PBX_ARI_URL": ARI_URL, "PBX_ARI_USER": ARI_USER, "PBX_ARI_PASSWORD": ARI_PASSWORD,
        "PBX_POLICY": str(policy), "PBX_DATABASE_URL": f"sqlite:///{tmp_path}/journal.db", **env})
    request.addfinalizer(engine.stop)
    return engine


async def no_leftovers(ari: AriClient) -> None:
    channels, bridges = await leftovers(ari, wait=10)
    assert not channels, f"channels left in Asterisk: {[c['name'] for c in channels]}"
    assert not bridges, f"bridges left in Asterisk: {bridges}"


async def test_asterisk_restart_next_call_is_served_by_the_same_process(asterisk, sip, tmp_path, request):
    app = app_process(tmp_path, request).start()
    await app.healthy()

    async def forwarded_call() -> None:
        sip.phone("101", "ring_forever")
        colleague = sip.phone("102", "answer", answer_delay_ms=200)
        caller = sip.call("101", talk_ms=500)
        assert await caller.wait(30) == 0
        assert colleague.received("INVITE"), "the app forwarded the call (the dialplan fallback would not)"

    await forwarded_call()
    restarted = asterisk("restart", check=False)
    assert restarted.returncode == 0, restarted.stderr
    health = await app.healthy(timeout=20)
    assert health["ari_connected"]
    _, metrics = await app.get("/metrics")
    [reconnects] = re.findall(r"^pbx_ari_reconnects_total (\S+)$", metrics, re.M)
    assert float(reconnects) >= 1, "the app reconnected on its own"
    await forwarded_call()
    assert app.proc.poll() is None and len(app.procs) == 1, "the same process served the next call"
    client = AriClient(ARI_URL, ARI_USER, ARI_PASSWORD, "pbx_app-test")
    try:
        await no_leftovers(client)
    finally:
        await client.close()


async def test_wrong_ari_password_is_named_retried_then_given_up(asterisk, tmp_path, request):
    app = app_process(tmp_path, request, PBX_ARI_PASSWORD="not-the-password", PBX_ARI_GIVE_UP_AFTER="1.5").start()
    code = await asyncio.get_running_loop().run_in_executor(None, app.proc.wait, 20)
    log = app.log()
    assert code == 3, log
    assert f"{ARI_URL} refused user '{ARI_USER}': wrong ARI user or password (401)" in log
    assert "retrying in" in log, "it tried more than once before giving up"
    assert "not-the-password" not in log


async def test_unreachable_asterisk_is_named_with_its_url(tmp_path, request):
    url = f"http://127.0.0.1:{free_port()}"
    app = app_process(tmp_path, request, PBX_ARI_URL=url, PBX_ARI_GIVE_UP_AFTER="1").start()
    code = await asyncio.get_running_loop().run_in_executor(None, app.proc.wait, 20)
    log = app.log()
    assert code == 3, log
    assert f"cannot reach Asterisk's ARI at {url}: connection refused" in log


async def test_burst_of_parallel_calls_leaves_no_channel_bridge_or_flow(start_app, ari, sip):
    app = await start_app(POLICY)
    calls = 20

    employee, colleague, callers = sip.burst("101", calls, rate=calls)
    assert await callers.wait(60) == 0, "every call of the burst was answered"
    ended = await app.wait_calls_ended(calls, timeout=20)
    assert [e.result for e in ended] == ["answered"] * calls
    assert len([e for e in app.journal.events if isinstance(e, CallStarted)]) == calls
    assert len(employee.received("CANCEL")) == calls
    assert len(colleague.received("INVITE")) == calls
    await no_leftovers(ari)
    subscribed = await ari.get(f"/applications/{ari.app}")
    assert subscribed["channel_ids"] == [] and subscribed["bridge_ids"] == []


async def test_overloaded_app_hands_new_calls_to_the_dialplan_fallback(start_app, sip):
    app = await start_app(POLICY, max_calls=1)
    sip.phone("101", "ring_forever")
    fallback_phone = sip.phone("103", "ring_forever")
    first = sip.call("101", cancel_after_ms=3000)
    await until(lambda: len(app.app.calls) == 1, 5, "the first call never reached the app")
    second = sip.call("103", cancel_after_ms=1500)
    await until(lambda: fallback_phone.received("INVITE"), 5, "the refused call did not ring its employee")
    await second.wait(10)
    await first.wait(10)
    assert app.app.refused == 1
    started = [e for e in app.journal.events if isinstance(e, CallStarted)]
    assert [e.extension for e in started] == ["101"], "the app took only the call it had room for"
    assert len([e for e in app.journal.events if isinstance(e, CallEnded)]) == 1
