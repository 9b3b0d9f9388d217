"""Issue 32, the FastAGI port under attack: a client that is not Asterisk cannot make up a call,
alter one in progress, reuse a real call's id, or make the server hold much; a refused peer
costs a log line a minute, not one per attempt."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from pbx_app.agi import AgiServer
from pbx_app.agi import server as agi_server
from pbx_app.agi.peers import AllowList, RefusalLog
from pbx_app.agi.protocol import MAX_HEADER_BYTES, MAX_LINE
from pbx_app.agi.secret import SecretError, read_secret
from pbx_app.agi.seen import SeenCalls
from pbx_app.history.events import CallStarted, LegEnded, MemoryJournal
from pbx_app.policy import parse_policy
from tests.support.fake_agi import report, request

POLICY = parse_policy('employees:\n  "102": {name: Petr Ivanov, ring_time: 20}\n  "103": {name: Anna, ring_time: 5}\n',
                      "<test>")
SECRET = b"0123456789abcdef0123456789abcdef"
CALL_ID = "1795986778.7"


@pytest.fixture
async def guarded():
    """start(**kwargs): an AgiServer with the shared secret, as `pbx-app agi` runs it."""
    listening = []

    async def start(**kwargs) -> AgiServer:
        server = AgiServer(lambda: POLICY, kwargs.pop("journal", MemoryJournal()), secret=SECRET, **kwargs)
        listening.append(await server.serve("127.0.0.1", 0))
        server.port = listening[-1].sockets[0].getsockname()[1]
        return server

    yield start
    for one in listening:
        one.close()


# ---- made-up and altered calls ----------------------------------------------------------------


async def test_the_issue_forgery_leaves_no_call_in_history(guarded):
    # The issue's forger: `call`, then `next` with what it was handed, "answered, 12 min 34 s".
    # Against the server before issue 32 this journals "79995550000 → 102 answered by 102".
    server = await guarded()
    handed = await request(server.port, "call", ["102", "79995550000"], CALL_ID)
    await request(server.port, "next", report(handed), CALL_ID)
    assert server.journal.events == [], "nothing reached the journal"
    assert "PBX_STATE" not in handed.variables and "PBX_PLAN" not in handed.variables
    assert [c.split(" ", 3)[:3] for c in handed.commands] == [["GET", "FULL", "VARIABLE"]], "only the challenge"
    assert server.served["refused"] == 2


async def test_asterisk_with_the_secret_is_served_and_never_sent_it(guarded):
    server = await guarded()
    handed = await request(server.port, "call", ["102", "79995550000"], CALL_ID, secret=SECRET)
    assert handed.variables["PBX_DO"] == "ring" and handed.variables["PBX_DIAL"] == "PJSIP/102"
    assert all(SECRET.decode() not in c for c in handed.commands), "the secret never goes over the wire"
    await request(server.port, "next", report(handed, "NOANSWER"), CALL_ID, secret=SECRET)
    assert [type(e).__name__ for e in server.journal.events] == ["CallStarted", "LegStarted", "LegEnded", "CallEnded"]
    assert server.journal.events[2].outcome == "no_answer"


async def test_an_altered_state_or_plan_or_another_calls_state_is_refused(guarded, caplog):
    server = await guarded()
    handed = await request(server.port, "call", ["102", "79995550000"], CALL_ID, secret=SECRET)
    state = handed.variables["PBX_STATE"]
    branch, index, leg, dialled, mac = state.split(":")
    other_plan = (await request(server.port, "call", ["103", "7000"], "1795986778.8", secret=SECRET)).plan
    assert other_plan != handed.plan
    forged = [
        [f"no_answer:{index}:{leg}:{dialled}:{mac}", handed.plan],  # another branch, same signature
        [state, other_plan],  # someone else's plan under this call's state
        [f"{branch}:{index}:{leg}:{dialled}", handed.plan],  # no signature at all
    ]
    for args in forged:
        answer = await request(server.port, "next", args + report(handed)[2:], CALL_ID, secret=SECRET)
        assert answer.variables["PBX_DO"] == "busy" and answer.variables["PBX_STATE"] == "end"
    # The state moved to another channel (its uniqueid) is not that channel's.
    await request(server.port, "hangup", report(handed), "1795986778.8", secret=SECRET)
    assert not [e for e in server.journal.events if isinstance(e, LegEnded)], "no leg was ended by a forgery"
    assert caplog.text.count("refused: the state or plan on the channel is not the one this server signed") == 4


async def test_a_call_id_already_in_the_journal_is_refused_and_its_row_kept(guarded, caplog):
    in_database = {"1795986778.1": object()}

    async def lookup(call_id):
        return in_database.get(call_id)

    server = await guarded(seen=SeenCalls(lookup))
    # A real call of another server, in the database; then one this server started itself.
    again = await request(server.port, "call", ["102", "79995550000"], "1795986778.1", secret=SECRET)
    await request(server.port, "call", ["102", "7000"], CALL_ID, secret=SECRET)
    twice = await request(server.port, "call", ["102", "79995550000"], CALL_ID, secret=SECRET)
    assert "PBX_DO" not in again.variables and "PBX_DO" not in twice.variables, "no step: the dialplan's own fallback"
    assert [(e.call_id, e.caller) for e in server.journal.events if isinstance(e, CallStarted)] == [(CALL_ID, "7000")]
    assert caplog.text.count("that call id is already in the journal") == 2


# ---- who may connect, and what it costs ---------------------------------------------------------


async def test_a_peer_off_the_allow_list_is_closed_unread_and_logged_once_a_minute(guarded, caplog):
    caplog.set_level(logging.WARNING, "pbx_app.agi")
    server = await guarded(allowed=AllowList(["127.0.0.1"]))
    for _ in range(20):
        answer = await request(server.port, "call", ["102", "7000"], CALL_ID, secret=SECRET, source="127.0.0.2")
        assert answer.closed_unread
    assert server.journal.events == []
    assert [r.getMessage() for r in caplog.records if "127.0.0.2" in r.getMessage()] == [
        "FastAGI: refused 127.0.0.2: not on PBX_AGI_ALLOWED_PEERS (more refusals of it: one line a minute)"]
    assert server.refusals.refused == 20


def test_refusals_are_counted_into_one_line_a_minute(caplog):
    now = [0.0]
    refusals = RefusalLog(clock=lambda: now[0])
    for second in range(0, 150):
        now[0] = float(second)
        refusals.note("10.0.0.9", "no proof of the shared secret")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["FastAGI: refused 10.0.0.9: no proof of the shared secret (more refusals of it: one line a minute)",
                     "FastAGI: refused 10.0.0.9 60 times in 60 s, last: no proof of the shared secret",
                     "FastAGI: refused 10.0.0.9 60 times in 60 s, last: no proof of the shared secret"]


def test_the_allow_list_takes_networks_and_dual_stack_peers():
    allowed = AllowList(["10.1.0.0/16", "::1"])
    assert allowed.allows("10.1.2.3") and allowed.allows("::ffff:10.1.2.3") and allowed.allows("::1")
    assert not allowed.allows("10.2.0.1") and not allowed.allows("127.0.0.1") and not allowed.allows("")
    with pytest.raises(ValueError, match="PBX_AGI_ALLOWED_PEERS: 'ten.1' is not an address"):
        AllowList(["ten.1"])


async def test_over_the_connection_cap_a_new_peer_is_closed_at_once_then_stale_ones_make_room(guarded, monkeypatch):
    monkeypatch.setattr(agi_server, "STALE_AFTER", 0.3)
    server = await guarded(max_connections=3)
    idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert server.requests == 3
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    assert await asyncio.wait_for(reader.read(), 1) == b"", "the fourth is closed at once"
    writer.close()
    await asyncio.sleep(0.35)  # the idle ones have not sent a request for longer than STALE_AFTER
    served = await request(server.port, "call", ["102", "7000"], CALL_ID, secret=SECRET)
    assert served.variables["PBX_DO"] == "ring", "a real request gets a place"
    assert await asyncio.wait_for(idle[0][0].read(), 1) == b"", "the oldest idle one made room"
    for _, w in idle:
        w.close()


async def test_headers_over_the_byte_cap_close_the_connection(guarded):
    server = await guarded()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    line = b"agi_x: " + b"a" * (MAX_LINE - 100) + b"\n"
    sent = 0
    with pytest.raises(ConnectionError):
        for _ in range(4 * MAX_HEADER_BYTES // len(line)):
            writer.write(line)
            await writer.drain()
            sent += len(line)
            await asyncio.sleep(0.001)
    assert sent <= MAX_HEADER_BYTES + 8 * len(line), "closed soon after the cap"
    assert server.journal.events == [] and server.requests == 0


# ---- the secret file ------------------------------------------------------------------------------------


def test_the_secret_file_is_the_dialplan_line_and_must_not_be_world_readable(tmp_path: Path):
    path = tmp_path / "pbx_agi_secret.conf"
    path.write_text("; made by openssl rand -hex 32\nPBX_AGI_SECRET = " + SECRET.decode() + "\n")
    os.chmod(path, 0o640)
    assert read_secret(path) == SECRET
    os.chmod(path, 0o644)
    with pytest.raises(SecretError, match="readable by every user"):
        read_secret(path)
    os.chmod(path, 0o600)
    path.write_text("PBX_AGI_SECRET=short,one\n")
    with pytest.raises(SecretError, match=r"pbx_agi_secret.conf:1:16: PBX_AGI_SECRET must be 32 to 256"):
        read_secret(path)
    with pytest.raises(SecretError, match="cannot read it"):
        read_secret(tmp_path / "missing.conf")
