"""Issue 4 through the real Asterisk: a CRM rule (webhook or static mapping) overrides the
employee's own forward; a slow CRM never holds the call; a policy file that breaks while a call
rings changes nothing for that call, and the next call runs on the last good policy."""

import asyncio
import logging
import os

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pbx_app.crm import CrmDirectory
from pbx_app.history.events import CallStarted, LegEnded
from pbx_app.policy.store import PolicyStore
from tests.support.wait import until

CALLER = "79001234567"

OWN_FORWARD = """
employees:
  "101": {name: Ivan, ring_time: 2, on_no_answer: {action: forward, to: "102", announcement: none}}
  "102": {name: Petr, ring_time: 3}
  "103": {name: Anna, ring_time: 5}
"""


def answered_legs(app):
    return [(l.outcome, l.answered_by) for l in app.journal.events if isinstance(l, LegEnded)]


def reasons(app):
    [started] = [e for e in app.journal.events if isinstance(e, CallStarted)]
    return started.reasons


@pytest.fixture
async def crm_server():
    """A CRM on 127.0.0.1 that says 103 is the responsible manager, after ``delay`` seconds."""

    class Crm:
        delay = 0.0
        asked: list[str] = []

    async def client(request):
        Crm.asked.append(request.query.get("caller", ""))
        await asyncio.sleep(Crm.delay)
        return web.json_response({"manager": "103"})

    app = web.Application()
    app.router.add_get("/client", client)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    Crm.url = str(server.make_url("/client"))
    Crm.asked = []
    yield Crm
    await server.close()


async def test_crm_webhook_rule_overrides_the_employees_own_forward(start_app, sip, crm_server):
    policy = OWN_FORWARD + f"crm: {{webhook: {{url: '{crm_server.url}', timeout_ms: 500}}}}\n"
    directory = CrmDirectory()
    try:
        app = await start_app(policy, crm=directory)
        sip.phone("101", "ring_forever")
        own_target = sip.phone("102", "answer", answer_delay_ms=200)
        manager = sip.phone("103", "answer", answer_delay_ms=300)
        caller = sip.call("101", talk_ms=500, caller=CALLER)
        assert await caller.wait(30) == 0
        [ended] = await app.wait_calls_ended()
    finally:
        await directory.close()
    assert (ended.result, ended.detail) == ("answered", "answered by 103")
    assert crm_server.asked == [CALLER]
    assert manager.received("INVITE") and manager.sent(200), "the responsible manager rang and answered"
    assert not own_target.received("INVITE"), "101's own forward target was never rung"
    assert caller.received(200)
    assert answered_legs(app) == [("no_answer", None), ("answered", "103")]
    assert any("CRM rule wins over 101's own setting (forward to 102)" in r for r in reasons(app))


async def test_static_crm_rule_for_the_dialled_manager_replaces_their_forward(start_app, sip):
    policy = OWN_FORWARD + f"""crm:
  clients:
    "+{CALLER}": {{manager: "101", on_no_answer: {{action: forward, to: "103", announcement: none}}}}
"""
    app = await start_app(policy)
    employee = sip.phone("101", "ring_forever")
    own_target = sip.phone("102", "answer", answer_delay_ms=200)
    crm_target = sip.phone("103", "answer", answer_delay_ms=200)
    caller = sip.call("101", talk_ms=500, caller=CALLER)
    assert await caller.wait(30) == 0
    [ended] = await app.wait_calls_ended()
    assert ended.detail == "answered by 103"
    assert crm_target.received("INVITE") and not own_target.received("INVITE")
    await employee.wait(5)
    sip.phone("101", "ring_forever")
    other = sip.call("101", talk_ms=500, caller="79990000000")  # not in the CRM: 101's own forward
    assert await other.wait(30) == 0
    [_, second] = await app.wait_calls_ended(2)
    assert second.detail == "answered by 102"


async def test_a_slow_crm_does_not_hold_the_call(start_app, sip, crm_server):
    crm_server.delay = 5.0
    policy = OWN_FORWARD + f"crm: {{webhook: {{url: '{crm_server.url}', timeout_ms: 300}}}}\n"
    directory = CrmDirectory()
    try:
        app = await start_app(policy, crm=directory)
        employee = sip.phone("101", "ring_forever")
        own_target = sip.phone("102", "answer", answer_delay_ms=200)
        caller = sip.call("101", talk_ms=500, caller=CALLER)
        assert await caller.wait(30) == 0
        [ended] = await app.wait_calls_ended()
    finally:
        await directory.close()
    wait = (employee.received("INVITE")[0].at - caller.sent("INVITE")[0].at).total_seconds()
    assert wait < 2.5, f"the employee rang {wait:.1f} s after the call came in; the CRM would have taken 5 s"
    assert ended.detail == "answered by 102" and own_target.received("INVITE")
    assert "CRM webhook did not answer within 300 ms: the employee's profile decides" in reasons(app)


GOOD = OWN_FORWARD.replace("ring_time: 2,", "ring_time: 3,")
# Would send 101's calls to 103 if it were taken; line 6 forwards to an unknown extension.
BROKEN = GOOD.replace('to: "102"', 'to: "103"') + '  "104": {on_no_answer: {action: forward, to: "199"}}\n'


def replace_file(path, text):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # as editors and the web UI do: a new inode, so the poll sees it


async def test_broken_policy_during_a_call_changes_nothing_and_the_last_good_one_stays(start_app, sip, tmp_path, caplog):
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    store = PolicyStore(path)
    watcher = asyncio.create_task(store.watch(interval=0.1))
    try:
        app = await start_app(GOOD)
        app.app.policy = store  # the app asks the store once per new call, as `pbx-app run` does
        employee = sip.phone("101", "ring_forever")
        colleague = sip.phone("102", "answer", answer_delay_ms=200)
        caller = sip.call("101", talk_ms=500)
        await until(lambda: employee.received("INVITE"), 10, "the employee's phone rings")
        with caplog.at_level(logging.ERROR, logger="pbx_app.policy"):
            replace_file(path, BROKEN)  # lands while 101 is ringing
            await until(lambda: store.last_error is not None, 10, "the broken file is refused")
        assert f"{path}:6:47: employees.104.on_no_answer.to: unknown extension or department '199'" in caplog.text
        assert await caller.wait(30) == 0
        [first] = await app.wait_calls_ended()
        assert first.detail == "answered by 102", "the ringing call finished on the policy it started with"
        assert colleague.received("INVITE")

        # The next call: the broken file is still there; the last good policy decides.
        await employee.wait(5)
        sip.phone("101", "ring_forever")
        colleague = sip.phone("102", "answer", answer_delay_ms=200)
        would_be = sip.phone("103", "answer", answer_delay_ms=200)
        caller = sip.call("101", talk_ms=500)
        assert await caller.wait(30) == 0
        [_, second] = await app.wait_calls_ended(2)
        assert second.detail == "answered by 102"
        assert colleague.received("INVITE") and not would_be.received("INVITE")
        assert store().employees["101"].on_no_answer.target == "102"
    finally:
        watcher.cancel()


async def test_a_policy_directory_hand_edit_of_one_file_reaches_the_next_call(start_app, sip, tmp_path):
    """Issue 25: the policy as a directory; a sysadmin edits one employee's file and the next
    real call follows it (the engine re-read it in a child process)."""
    folder = tmp_path / "policy"
    (folder / "employees").mkdir(parents=True)
    for ext, body in (("101", '{name: Ivan, ring_time: 2, on_no_answer: {action: forward, to: "102", announcement: none}}'),
                      ("102", "{name: Petr, ring_time: 3}"), ("103", "{name: Anna, ring_time: 3}")):
        (folder / "employees" / f"{ext}.yaml").write_text(f'employees:\n  "{ext}": {body}\n')
    (folder / "site.yaml").write_text("site:\n  ring_time: 5\n")
    store = PolicyStore(folder)
    watcher = asyncio.create_task(store.watch(interval=0.1))
    try:
        app = await start_app(OWN_FORWARD)
        app.app.policy = store
        replace_file(folder / "employees" / "101.yaml", (folder / "employees" / "101.yaml").read_text().replace('to: "102"', 'to: "103"'))
        await until(lambda: store().employees["101"].on_no_answer.target == "103", 20, "the edited file is in force")
        sip.phone("101", "ring_forever")
        old_target = sip.phone("102", "answer", answer_delay_ms=200)
        new_target = sip.phone("103", "answer", answer_delay_ms=200)
        caller = sip.call("101", talk_ms=500)
        assert await caller.wait(30) == 0
        [ended] = await app.wait_calls_ended()
        assert ended.detail == "answered by 103"
        assert new_target.received("INVITE") and not old_target.received("INVITE")
    finally:
        watcher.cancel()
