"""Issue 7: no call is lost when the app or Asterisk fails. The app runs as its own process
(`python -m pbx_app run`), is killed with SIGKILL mid-call and started again; Asterisk is restarted
under a running app; bad credentials give a clear error; a burst of calls leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from pbx_app.ari import AriClient
from pbx_app.history.events import CallEnded, CallStarted
from tests.integration.conftest import ARI_PASSWORD, ARI_URL, ARI_USER, REPO, leftovers
from tests.support.sipp import PHONE_PORT, Sipp

BENCH_SIPP = REPO / "bench" / "sipp"

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppProcess:
    """`pbx-app run` as a separate process, as in production; its log goes to a file."""

    def __init__(self, workdir: Path, policy: str = POLICY, **env: str):
        self.workdir = workdir
        self.policy = workdir / "policy.yaml"
        self.policy.write_text(policy)
        self.port = free_port()
        self.env = {
            **os.environ,
            "PBX_ARI_URL": ARI_URL,
            "PBX_ARI_USER": ARI_USER,
            "PBX_ARI_PASSWORD": ARI_PASSWORD,
            "PBX_WEB_BIND": f"127.0.0.1:{self.port}",
            # Its own journal and web files: the same ones across a kill and restart, like production.
            "PBX_DATABASE_URL": f"sqlite:///{workdir}/journal.db",
            "PBX_SPOOL_DIR": str(workdir / "spool"),
            "PBX_USERS": str(workdir / "users.json"),
            "PBX_AUDIT_LOG": str(workdir / "audit.jsonl"),
            **env,
        }
        self.procs: list[subprocess.Popen] = []

    @property
    def proc(self) -> subprocess.Popen:
        return self.procs[-1]

    def log(self) -> str:
        return "".join((self.workdir / f"app{i}.log").read_text() for i in range(len(self.procs)))

    def start(self) -> "AppProcess":
        out = open(self.workdir / f"app{len(self.procs)}.log", "w")
        self.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "pbx_app", "run", "--policy", str(self.policy)],
                cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )
        )
        return self

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{self.port}{path}") as r:
                return r.status, await r.text()

    async def healthy(self, timeout: float = 15.0) -> dict:
        """Waits until /health says the app is connected to ARI with its policy loaded."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            assert self.proc.poll() is None, f"the app exited:\n{self.log()}"
            try:
                async with aiohttp.ClientSession() as s:
                    async with s.get(f"http://127.0.0.1:{self.port}/health") as r:
                        if r.status == 200:
                            return await r.json()
            except aiohttp.ClientError:
                pass
            if loop.time() > deadline:
                raise TimeoutError(f"the app did not become healthy:\n{self.log()}")
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


async def until(predicate, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


async def no_leftovers(ari: AriClient) -> None:
    channels, bridges = await leftovers(ari, wait=10)
    assert not channels, f"channels left in Asterisk: {[c['name'] for c in channels]}"
    assert not bridges, f"bridges left in Asterisk: {bridges}"


def app_process(tmp_path, request, **env) -> AppProcess:
    app = AppProcess(tmp_path, **env)
    request.addfinalizer(app.stop)
    return app


async def test_app_killed_while_ringing_carries_the_call_on_after_restart(asterisk, ari, sip, tmp_path, request):
    app = app_process(tmp_path, request).start()
    await app.healthy()
    employee = sip.phone("101", "ring_forever")
    colleague = sip.phone("102", "answer", answer_delay_ms=300)
    other = sip.phone("103", "ring_forever")
    caller = sip.call("101", talk_ms=1500)
    await until(lambda: employee.received("INVITE"), 5, "the employee's phone never rang")
    first_pid = app.proc.pid
    app.kill()

    # While the app is down a new call still reaches its employee, through the dialplan.
    await asyncio.sleep(0.3)  # for Asterisk to see the websocket closed
    outage_caller = sip.call("103", cancel_after_ms=1000)
    await until(lambda: other.received("INVITE"), 5, "no phone rang for a call placed while the app was down")
    app.start()
    await app.healthy()
    assert app.proc.pid != first_pid

    assert await caller.wait(30) == 0, "the caller's call did not complete"
    await outage_caller.wait(10)
    assert caller.received(200), "the caller was answered by the colleague"
    [rang] = employee.received("INVITE")
    [forwarded] = colleague.received("INVITE")
    assert employee.received("CANCEL"), "the employee's phone stopped ringing"
    rang_for = (forwarded.at - rang.at).total_seconds()
    assert 3.5 <= rang_for <= 4 + 5, f"forwarded {rang_for:.1f} s after the employee's phone started ringing (ring time 4 s)"
    await no_leftovers(ari)
    health = await app.healthy()
    assert health["calls_in_progress"] == 0


async def test_app_killed_mid_announcement_caller_is_still_forwarded(asterisk, ari, sip, tmp_path, request):
    app = app_process(tmp_path, request).start()
    await app.healthy()
    sip.phone("101", "ring_forever")
    colleague = sip.phone("102", "answer", answer_delay_ms=300)
    caller = sip.call("104", talk_ms=1000)
    # The announcement comes as early media: 183 once the 2 s ring time is over.
    await until(lambda: caller.received(183), 10, "the announcement never started")
    app.kill()
    app.start()
    await app.healthy()
    assert await caller.wait(40) == 0, f"the caller's call did not complete\n{app.log()}"
    [forwarded] = colleague.received("INVITE")
    [progress] = caller.received(183)[:1]
    # Nobody drove the channel while the app was down; the new process found it in Stasis and
    # carried on (the notice starts over: 4.6 s), so the forward comes within seconds.
    waited = (forwarded.at - progress.at).total_seconds()
    assert waited <= 2 * 4.7 + 5, f"the colleague rang {waited:.1f} s after the announcement started"
    assert caller.received(200)
    assert "picked up 1 call(s) left in Stasis" in app.log()
    await no_leftovers(ari)


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
    client = AriClient(ARI_URL, ARI_USER, ARI_PASSWORD, "pbx_app")
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

    def sipp(name: str, scenario: str, values: dict, args: list[str]) -> Sipp:
        text = (BENCH_SIPP / scenario).read_text()
        for key, value in values.items():
            text = text.replace(f"[{key}]", str(value))
        path = sip.workdir / f"burst-{scenario}"
        path.write_text(text)
        p = Sipp(name, ["-sf", str(path), *args], sip.workdir).start()
        sip.procs.append(p)
        return p

    many = ["-m", str(calls), "-l", str(calls)]
    employee = sipp("burst-101", "phone_ring_forever.xml", {}, ["-i", "127.0.0.1", "-p", str(PHONE_PORT["101"]), *many])
    colleague = sipp("burst-102", "phone_answer.xml", {"answer_delay": 200},
                     ["-i", "127.0.0.1", "-p", str(PHONE_PORT["102"]), *many])
    callers = sipp("burst-callers", "caller.xml", {"talk": 1000},
                   ["127.0.0.1:5060", "-s", "101", "-i", "127.0.0.1", "-p", "5299", "-r", str(calls), *many])
    assert await callers.wait(60) == 0, "every call of the burst was answered"
    ended = await app.wait_calls_ended(calls, timeout=20)
    assert [e.result for e in ended] == ["answered"] * calls
    assert len([e for e in app.journal.events if isinstance(e, CallStarted)]) == calls
    assert len(employee.received("CANCEL")) == calls
    assert len(colleague.received("INVITE")) == calls
    await no_leftovers(ari)
    subscribed = await ari.get("/applications/pbx_app")
    assert subscribed["channel_ids"] == [] and subscribed["bridge_ids"] == []


async def test_overloaded_app_hands_new_calls_to_the_dialplan_fallback(start_app, sip):
    app = await start_app(POLICY)
    app.app.max_calls = 1
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
