"""The FastAGI wire protocol: bounded, and a peer that misbehaves ends its request without
harming the others."""

from __future__ import annotations

import asyncio

import pytest

from pbx_app.agi import AgiServer
from pbx_app.agi.protocol import AgiError, AgiRequest, quote
from pbx_app.history.events import MemoryJournal
from pbx_app.policy import parse_policy

POLICY = parse_policy('employees:\n  "101": {name: Ivan, ring_time: 2}\n', "<test>")
HEADERS = "agi_network: yes\nagi_network_script: call\nagi_uniqueid: 1.1\nagi_channel: PJSIP/c-1\nagi_arg_1: 101\nagi_arg_2: 7900\n\n"


@pytest.fixture
async def server():
    journal = MemoryJournal()
    agi = AgiServer(lambda: POLICY, journal)
    listening = await agi.serve("127.0.0.1", 0)
    agi.port = listening.sockets[0].getsockname()[1]
    yield agi
    listening.close()


async def test_a_peer_that_connects_and_closes_does_not_stall_the_server(server):
    # panoramisk 1.4's handler loops on read() == b"" for ever here, blocking the event loop.
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_network: yes\n")
    writer.close()
    await asyncio.wait_for(asyncio.sleep(0.2), 1)
    # The next call is still served.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(HEADERS.encode())
    first = await asyncio.wait_for(reader.readline(), 2)
    assert first.startswith(b"SET VARIABLE PBX_PLAN ")
    writer.close()
    assert server.requests <= 1


async def test_a_request_without_the_script_header_is_refused(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_channel: x\n\n")
    assert await asyncio.wait_for(reader.read(), 2) == b""
    assert server.journal.events == []


async def test_an_unknown_route_sends_nothing(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(HEADERS.replace("script: call", "script: other").encode())
    assert await asyncio.wait_for(reader.read(), 2) == b""
    assert server.served["refused"] == 1


class Wire:
    """An AgiRequest on an in-memory stream: what Asterisk would answer, and what was sent."""

    def __init__(self, answers: str):
        self.reader = asyncio.StreamReader()
        self.reader.feed_data(answers.encode())
        self.reader.feed_eof()
        self.sent = b""

    def write(self, data: bytes) -> None:
        self.sent += data

    async def drain(self) -> None:
        pass

    def request(self) -> AgiRequest:
        return AgiRequest(self.reader, self, {"agi_network_script": "next"})  # type: ignore[arg-type]


async def test_get_variable_reads_the_value_in_parentheses():
    wire = Wire("200 result=1 (a (b) c)\n200 result=0\n")
    request = wire.request()
    assert await request.get_variable("X") == "a (b) c"
    assert await request.get_variable("Y") is None
    assert wire.sent == b"GET VARIABLE X\nGET VARIABLE Y\n"


async def test_a_hangup_notice_before_the_answer_is_skipped():
    wire = Wire("HANGUP\n200 result=1\n")
    await wire.request().set_variable("PBX_DO", "busy")
    assert wire.sent == b'SET VARIABLE PBX_DO "busy"\n'


async def test_usage_error_text_is_read_to_its_end_and_raises():
    wire = Wire("520-Invalid command syntax.  Proper usage follows:\nUsage: SET VARIABLE\n520 End of proper usage.\n200 result=1\n")
    request = wire.request()
    with pytest.raises(AgiError, match="520"):
        await request.command("SET VARIABLE")
    assert (await request.command("NOOP")).result == "1", "the stream is still in step"


async def test_a_closed_stream_raises_instead_of_looping():
    with pytest.raises(AgiError, match="closed"):
        await Wire("").request().command("NOOP")


async def test_a_command_over_asterisks_buffer_is_refused_before_sending():
    wire = Wire("")
    with pytest.raises(AgiError, match="limit"):
        await wire.request().set_variable("X", "y" * 3000)
    assert wire.sent == b""


def test_quote_escapes_quotes_and_backslashes_and_refuses_line_breaks():
    assert quote('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'
    with pytest.raises(ValueError):
        quote("two\nlines")
