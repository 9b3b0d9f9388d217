"""Issue 28: FastAGI mode offers the callback when `pbx-app agi` has AMI — real calls from
127.0.0.4 into pbx-direct-agi, the FastAGI server in this process, the callbacks served over
AMI (config/asterisk/manager.conf, the user scripts/testbed writes) with panoramisk."""

from __future__ import annotations

import asyncio
import os

import pytest

from pbx_app.agi import AgiServer
from pbx_app.agi.callbacks import AgiCallbacks
from pbx_app.history.events import CallStarted, LegStarted, MemoryJournal
from pbx_app.history.records import fold
from pbx_app.history.rows import history
from pbx_app.policy import parse_policy
from pbx_app.settings import Settings
from tests.support.tcp_proxy import TcpProxy
from tests.support.wait import until

from .conftest import leftovers
from .test_agi_calls import AGI_BIND, AGI_CALLER_IP
from .test_callback import CLIENT, _state, cdr_rows, policy

AMI_URL = os.environ.get("PBX_AMI_URL", "tcp://127.0.0.1:5038")
AMI_USER = os.environ.get("PBX_AMI_USER", "pbx_app")
AMI_SECRET = os.environ.get("PBX_AMI_SECRET", "pbx_app_ami_secret")


class AgiSite:
    def __init__(self, store_url: str):
        self.store_url = store_url
        self.journal = MemoryJournal()
        self.callbacks: list[AgiCallbacks] = []
        self.listening: asyncio.Server | None = None

    @property
    def store(self):
        return self.callbacks[0].store

    def story(self) -> list:
        return history(fold(list(self.journal.events)))

    def call_id(self) -> str:
        return next(e.call_id for e in self.journal.events if isinstance(e, CallStarted))


@pytest.fixture
async def agi_site(ari, tmp_path):
    """start(policy, servers=N, ami_url=…) → the FastAGI server (on the dialplan's default
    address) with callbacks over AMI, and N-1 more servers' callback services beside it, all
    sharing the journal's database. On teardown: no channel left in Asterisk."""
    sites: list[AgiSite] = []

    async def start(policy_yaml: str, servers: int = 1, ami_url: str = AMI_URL, interval: float = 30.0,
                    ring_time: int = 10) -> AgiSite:
        policy = parse_policy(policy_yaml, "<test policy>")
        site = AgiSite(f"sqlite:///{tmp_path}/journal.db")
        settings = Settings(database_url=site.store_url, ami_url=ami_url, ami_user=AMI_USER, ami_secret=AMI_SECRET,
                            callback_interval=interval)
        for n in range(servers):
            callbacks = AgiCallbacks(settings, lambda: policy, site.journal, owner=f"agi-test-{n}", ring_time=ring_time)
            callbacks.start()
            site.callbacks.append(callbacks)
        await until(lambda: all(c.ami.up for c in site.callbacks), 10, "logged in to AMI")
        server = AgiServer(lambda: policy, site.journal, callbacks=site.callbacks[0])
        site.listening = await server.serve(*AGI_BIND)
        sites.append(site)
        return site

    yield start
    channels, _ = await leftovers(ari, wait=10)
    for site in sites:
        site.listening.close()
        for callbacks in site.callbacks:
            await callbacks.stop()
    assert not channels, f"channels left in Asterisk: {[c['name'] for c in channels]}"


async def hang_up_callback(ari) -> None:
    """The employee ends the talk (their phone waits for a BYE)."""
    [leg] = [c for c in await ari.get("/channels") if c["id"].startswith("pbxcb-")]
    await ari.delete(f"/channels/{leg['id']}")


async def client_presses_1(site: AgiSite, sip) -> str:
    """A client calls 101 through the FastAGI context, 101 does not answer, the client presses 1."""
    first = sip.phone("101", "ring_forever")
    client = sip.call_pressing("101", key_after_ms=1500, source_ip=AGI_CALLER_IP)
    assert await client.wait(40) == 0
    assert client.received(200), "the client was answered to collect the digit"
    assert client.received("BYE"), "Asterisk hung up after 'we will call you back'"
    await first.wait(10)
    call_id = site.call_id()
    request = await until(lambda: site.store.get(call_id), 5, "the request is stored")
    assert (request.state, request.employee, request.client) == ("waiting", "101", CLIENT)
    return call_id


async def test_the_full_callback_story_in_fastagi_mode(agi_site, sip, ari):
    site = await agi_site(policy(retry=8), interval=1.0)
    call_id = await client_presses_1(site, sip)
    employee = sip.keys_phone("101", key_after_ms=1500)
    the_client = sip.client_phone("answer")
    await until(lambda: the_client.received("INVITE"), 30, "the client's phone rings")
    [callback_invite] = employee.received("INVITE")
    assert "Callback" in callback_invite.text and CLIENT in callback_invite.text
    [invite] = the_client.received("INVITE")
    assert invite.first_line.startswith(f"INVITE sip:{CLIENT}@127.0.0.1:5301")
    assert "<sip:101@" in next(l for l in invite.text.splitlines() if l.startswith("From:")), "the employee's number"
    done = await until(lambda: _state(site.store, call_id, "done"), 10, "the request is done")
    assert done.answered_by == "101" and done.attempts == 1 and done.lease_owner is None
    await asyncio.sleep(1.0)  # they talk; then the employee hangs up
    await hang_up_callback(ari)
    await until(lambda: the_client.received("BYE"), 10, "the client's call ends with the employee's")
    await until(lambda: site.callbacks[0].service.served.get("answered"), 10, "the attempt is over")

    [row] = [r for r in site.story() if r.call_id == call_id]
    assert (row.status, row.label, row.employee) == ("answered", "Callback", "101")
    assert row.what_happened == "no answer; callback requested; called back by 101, client answered"
    await asyncio.sleep(1)
    rows = {r["userfield"]: r for r in cdr_rows(call_id)}
    assert len(rows) == 3, rows
    assert rows[f"{call_id}:1:employee:101"]["disposition"] == "NO ANSWER"
    assert rows[f"{call_id}:2:callback_offer:101:answered"]["disposition"] == "ANSWERED"
    back = rows[f"{call_id}:3:callback:101"]
    assert back["disposition"] == "ANSWERED" and back["dstchannel"].startswith("PJSIP/clients-")


async def employee_takes_another_call(sip):
    """101 answers another client's call (through the FastAGI context too) and talks ~11 s; the
    same phone then answers the callback and presses 1."""
    employee = sip.keys_phone("101", calls=2, key_after_ms=1500)
    other = sip.call("101", talk_ms=6000, caller="79005550000", source_ip=AGI_CALLER_IP)
    await until(lambda: employee.sent(200), 15, "101 answers the other call")
    return employee, other


async def test_the_employee_busy_then_free_is_called_back_when_the_phone_goes_idle(agi_site, sip, ari):
    site = await agi_site(policy(retry=10), interval=30.0)  # only the phone going idle can start it in time
    call_id = await client_presses_1(site, sip)
    employee, other = await employee_takes_another_call(sip)
    the_client = sip.client_phone("answer")
    await until(lambda: len(employee.received("INVITE")) >= 2, 40, "101 is rung for the callback")
    delay = (employee.received("INVITE")[1].at - other.sent("BYE")[0].at).total_seconds()
    print(f"101 idle -> callback rings 101 (AMI DeviceStateChange): {delay * 1000:.0f} ms")
    assert 0 <= delay < 2.0, "the phone going idle started the callback (the periodic look is 30 s away)"
    await until(lambda: _state(site.store, call_id, "done"), 20, "the request is done")
    await hang_up_callback(ari)
    await until(lambda: the_client.received("BYE"), 10, "the talk ends")


async def test_ami_down_when_the_employee_becomes_free_the_request_waits_and_is_served_after_reconnect(agi_site, sip, ari):
    proxy = await TcpProxy("127.0.0.1", 5038).start()
    try:
        site = await agi_site(policy(retry=10), ami_url=proxy.url, interval=30.0)
        call_id = await client_presses_1(site, sip)
        employee, other = await employee_takes_another_call(sip)
        await proxy.cut()  # AMI goes while 101 talks: the DeviceStateChange of the call's end is lost
        await until(lambda: other.sent("BYE"), 20, "the other call ends")
        await until(lambda: site.callbacks[0].ami.state == "down", 10, "the client sees AMI down")
        await asyncio.sleep(2)
        assert len(employee.received("INVITE")) == 1, "nobody is called back while AMI is down"
        waiting = await site.store.get(call_id)
        assert (waiting.state, waiting.lease_owner) == ("waiting", None), "the request survives, unclaimed"
        the_client = sip.client_phone("answer")
        await proxy.restore()
        restored = asyncio.get_running_loop().time()
        await until(lambda: len(employee.received("INVITE")) >= 2, 30, "101 is rung once AMI is back")
        print(f"AMI back -> callback rings 101: {asyncio.get_running_loop().time() - restored:.1f} s")
        assert site.callbacks[0].ami.connections == 2
        await until(lambda: _state(site.store, call_id, "done"), 20, "the request is done")
        await hang_up_callback(ari)
        await until(lambda: the_client.received("BYE"), 10, "the talk ends")
    finally:
        await proxy.cut()


async def test_two_fastagi_servers_call_one_request_back_once(agi_site, sip, ari):
    site = await agi_site(policy(retry=8), servers=2, interval=1.0)
    call_id = await client_presses_1(site, sip)
    employee = sip.keys_phone("101", calls=2, key_after_ms=1500)  # a second callback would ring here
    the_client = sip.client_phone("answer")
    await until(lambda: _state(site.store, call_id, "done"), 40, "the request is done")
    await asyncio.sleep(2.5)  # both services look again (every 1 s) while they talk
    await hang_up_callback(ari)
    await until(lambda: the_client.received("BYE"), 10, "the talk ends")
    await until(lambda: sum(c.service.served.get("answered", 0) for c in site.callbacks) == 1, 10, "the attempt is over")
    assert len(employee.received("INVITE")) == 1, "101 was rung once"
    served = [c.service.served for c in site.callbacks]
    assert sorted(sum(s.values()) for s in served) == [0, 1], f"one server served it: {served}"
    callback_legs = [e for e in site.journal.events if isinstance(e, LegStarted) and e.role == "callback"]
    assert len(callback_legs) == 1
    [row] = [r for r in site.story() if r.call_id == call_id]
    assert row.what_happened == "no answer; callback requested; called back by 101, client answered"
