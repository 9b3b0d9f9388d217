"""Reading what a request sends, bounded: a JSON body or a sign-in form of at most a few KiB,
text that fits in a line of the policy and the audit log. Anything else is a BadInput with a
status and a message for the sender (never a 500)."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

MAX_JSON = 16 * 1024
MAX_FORM = 4 * 1024
# Lone surrogates (from JSON's \ud800 escapes) cannot be written as UTF-8; control characters
# have no place in a name or a spoken text.
_UNWRITABLE = re.compile(r"[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class BadInput(Exception):
    def __init__(self, status: int, message: str, code: str = "bad_request"):
        self.status = status
        self.message = message
        self.code = code
        super().__init__(message)


async def read_bounded(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise BadInput(413, f"the request body is too large: the limit is {limit // 1024} KiB", "too_large")
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await request.content.read(limit + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise BadInput(413, f"the request body is too large: the limit is {limit // 1024} KiB", "too_large")
    except (HttpProcessingError, ValueError, OSError, RuntimeError) as exc:  # a broken chunked body, a reset
        raise BadInput(400, f"the request body could not be read ({type(exc).__name__})") from None
    return b"".join(chunks)


async def read_json(request: web.Request, what: str, limit: int = MAX_JSON) -> dict:
    data = await read_bounded(request, limit)
    try:
        body = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise BadInput(400, f"expected a JSON body: {what}") from None
    if not isinstance(body, dict):
        raise BadInput(400, f"expected a JSON object: {what}")
    return body


async def read_form(request: web.Request, limit: int = MAX_FORM) -> dict[str, str]:
    data = await read_bounded(request, limit)
    try:
        pairs = parse_qsl(data.decode("ascii"), keep_blank_values=True, max_num_fields=20,
                          encoding="utf-8", errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise BadInput(400, "expected a form (application/x-www-form-urlencoded)") from None
    return {k: v for k, v in pairs}


def text(value: object, field: str, limit: int) -> str:
    """One line of text, whitespace collapsed; refused when too long or not writable."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadInput(400, f"'{field}' must be text")
    if len(value) > limit * 4:  # before any copy of it is made
        raise BadInput(400, f"'{field}' is too long: the limit is {limit} characters")
    if _UNWRITABLE.search(value):
        raise BadInput(400, f"'{field}' contains characters that cannot be used (control characters or broken Unicode)")
    value = " ".join(value.split())
    if len(value) > limit:
        raise BadInput(400, f"'{field}' is too long: the limit is {limit} characters")
    return value


def writable(value: str) -> bool:
    return not _UNWRITABLE.search(value)
