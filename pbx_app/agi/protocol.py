"""The FastAGI wire protocol on asyncio streams: Asterisk connects, sends the request's
``agi_*`` headers and a blank line, then we send commands one line at a time and read one
result line for each. Everything read is bounded in size and time, and a peer that closes
early ends the request instead of spinning."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

MAX_HEADERS = 256  # Asterisk sends ~25 agi_* lines plus one per argument
# Stream limit: one header or result line. The longest we send for is the plan argument of
# `next` (at most 4 × 1,500 characters, story/codec.py).
MAX_LINE = 8 * 1024
# All of one request's headers: a real one is a few KB. With MAX_LINE this bounds what one
# connection can make us hold, whatever a peer sends (issue 32: 400 peers once took 1.7 GB).
MAX_HEADER_BYTES = 64 * 1024
HEADER_TIMEOUT = 5.0
COMMAND_TIMEOUT = 5.0
# Asterisk reads a command into a 2048-byte buffer (res_agi AGI_BUF_LEN); longer is cut.
MAX_COMMAND = 2000

_RESULT = re.compile(r"^(\d{3})([ -])(.*)$")
_VALUE = re.compile(r"result=(-?\d*)(?:\s+\((.*)\))?")


class AgiError(Exception):
    """The request cannot go on: the peer closed, timed out, or refused a command."""


@dataclass(frozen=True)
class Result:
    code: int
    result: str  # the number after result=
    data: str | None  # the text in parentheses, e.g. a variable's value


def quote(value: str) -> str:
    """An AGI command argument: double-quoted, with Asterisk's backslash escapes."""
    if "\n" in value or "\r" in value:
        raise ValueError("an AGI argument cannot hold a line break")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class AgiRequest:
    """One FastAGI request: its headers and the command channel back to Asterisk."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str]):
        self.reader = reader
        self.writer = writer
        self.headers = headers

    @property
    def script(self) -> str:
        """The route: the path of agi://host:port/PATH, without a query."""
        return self.headers.get("agi_network_script", "").split("?", 1)[0].strip("/")

    @property
    def args(self) -> list[str]:
        found, n = [], 1
        while f"agi_arg_{n}" in self.headers:
            found.append(self.headers[f"agi_arg_{n}"])
            n += 1
        return found

    @classmethod
    async def accept(cls, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> "AgiRequest":
        headers: dict[str, str] = {}
        size = 0
        async with asyncio.timeout(HEADER_TIMEOUT):
            while True:
                line = await _readline(reader)
                if not line:
                    break
                size += len(line) + 1
                if len(headers) >= MAX_HEADERS or size > MAX_HEADER_BYTES:
                    raise AgiError(f"AGI headers over {MAX_HEADERS} lines or {MAX_HEADER_BYTES} bytes")
                key, sep, value = line.partition(":")
                if sep:
                    headers[key.strip()] = value[1:] if value.startswith(" ") else value
        if "agi_network_script" not in headers:
            raise AgiError("not a FastAGI request (no agi_network_script)")
        return cls(reader, writer, headers)

    async def command(self, text: str) -> Result:
        if len(text) > MAX_COMMAND:
            raise AgiError(f"AGI command of {len(text)} bytes is over Asterisk's limit")
        self.writer.write(text.encode() + b"\n")
        async with asyncio.timeout(COMMAND_TIMEOUT):
            await self.writer.drain()
            line = await _readline(self.reader)
            # Asterisk says HANGUP on its own when the caller hangs up mid-request; the
            # command's own answer follows.
            while line == "HANGUP":
                line = await _readline(self.reader)
            m = _RESULT.match(line)
            if m is None:
                raise AgiError(f"unexpected AGI answer {line[:80]!r} to {text[:40]!r}")
            code, more = int(m.group(1)), m.group(2) == "-"
            while more:  # 520- usage text, up to its "520 End of proper usage."
                more = not (await _readline(self.reader)).startswith(f"{code} ")
        if code != 200:
            raise AgiError(f"AGI {text.split(' ', 2)[:2]} answered {code} {m.group(3)[:80]}")
        v = _VALUE.search(m.group(3))
        return Result(code, v.group(1) if v else "", v.group(2) if v else None)

    async def get_variable(self, name: str) -> str | None:
        result = await self.command(f"GET VARIABLE {name}")
        return result.data if result.result == "1" else None

    async def set_variable(self, name: str, value: str) -> None:
        await self.command(f"SET VARIABLE {name} {quote(value)}")

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def _readline(reader: asyncio.StreamReader) -> str:
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        raise AgiError("Asterisk closed the AGI connection") from None
    except asyncio.LimitOverrunError:
        raise AgiError("AGI line too long") from None
    return raw.decode("utf-8", "replace").rstrip("\r\n")
