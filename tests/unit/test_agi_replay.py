"""The FastAGI server against Asterisk's side of a real call, replayed: the requests and
answers recorded between the test bed's Asterisk 22 and the server for "101 does not answer,
the announcement, 102 answers, the caller hangs up" (tests/unit/data/agi_forward_answered.json).
Each request comes on its own connection, as Asterisk makes them, and the server must send the
very commands it sent then and journal the same story."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pbx_app.agi import AgiServer
from pbx_app.history.events import CallEnded, CallStarted, LegEnded, LegStarted, MemoryJournal
from pbx_app.policy import parse_policy

CAPTURE = json.loads((Path(__file__).parent / "data" / "agi_forward_answered.json").read_text())


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


async def replay(port: int, session: list[list[str]]) -> None:
    """Plays Asterisk's lines of one request and checks each line the server sends."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for who, line in session:
            if who == "asterisk":
                writer.write(line.encode())
                await writer.drain()
            else:
                got = await asyncio.wait_for(reader.readline(), 5)
                assert got.decode() == line
        assert await asyncio.wait_for(reader.read(), 5) == b"", "the server closes the request"
    finally:
        writer.close()


async def test_replayed_call_gives_the_same_commands_and_journal():
    journal, clock = MemoryJournal(), Clock()
    policy = parse_policy(CAPTURE["policy"], "<captured policy>")
    server = AgiServer(lambda: policy, journal, clock=clock)
    listening = await server.serve("127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        for session, seconds in zip(CAPTURE["sessions"], (0, 2, 4.6, 2)):
            clock.now += timedelta(seconds=seconds)
            await replay(port, session)
    finally:
        listening.close()
    events = journal.events
    assert [type(e) for e in events] == [CallStarted, LegStarted, LegEnded, LegStarted, LegEnded, LegStarted, LegEnded,
                                         CallEnded]
    started = events[0]
    assert (started.call_id, started.channel_id, started.caller, started.extension) == (
        "1795986778.0", "1795986778.0", "79001234567", "101")
    assert started.channel_name == "PJSIP/client-agi-00000000"
    assert [(e.leg, e.role, e.targets) for e in events if isinstance(e, LegStarted)] == [
        (1, "employee", ("101",)), (2, "announcement", ()), (3, "forward", ("102",))]
    assert [(e.leg, e.outcome, e.answered_by, e.cause) for e in events if isinstance(e, LegEnded)] == [
        (1, "no_answer", None, "NOANSWER,0"), (2, "played", None, "sound:pbx_app/forward-notice"),
        (3, "answered", "102", None)]
    # Dial() said the answered leg lasted 1513 ms when the caller hung up.
    assert events[6].answered_at == clock.now - timedelta(milliseconds=1513)
    assert (events[-1].result, events[-1].detail) == ("answered", "answered by 102")
    assert server.requests == 0
