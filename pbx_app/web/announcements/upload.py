"""A sound sent from the page as a form upload, announcement or spoken name alike: bounded by the
length the browser declares and again by what is actually read, and written outside the sounds'
folders under our own name, so the sender's file name never becomes a path. Refusals are BadInput
(the api guard answers them)."""

from __future__ import annotations

import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..http.bodies import BadInput, text

CHUNK = 64 * 1024
MAX_PARTS = 5  # form parts looked at before the file
MULTIPART_OVERHEAD = 64 * 1024
_BROKEN_FORM = (ValueError, AssertionError, HttpProcessingError, RuntimeError)


@dataclass(frozen=True)
class Upload:
    path: Path
    size: int
    sent_as: str  # the file name the browser gave, for the audit log only


async def _file_part(request: web.Request):
    """The multipart part named 'file', having skipped at most a few others."""
    try:
        reader = await request.multipart()
        for _ in range(MAX_PARTS):
            part = await reader.next()
            if part is None:
                break
            if getattr(part, "name", None) == "file" and hasattr(part, "read_chunk"):
                return part
    except (KeyError, LookupError, *_BROKEN_FORM):
        pass
    raise BadInput(400, "expected a form upload with a 'file' field")


@asynccontextmanager
async def received(request: web.Request, limit: int, too_large: str) -> AsyncIterator[Upload]:
    """The form's file, saved to a temporary file that lives as long as the context."""
    # The whole form, every part, is bounded by the length the browser declares.
    if request.content_length is None:
        raise BadInput(411, "send the upload with a Content-Length", "length_required")
    if request.content_length > limit + MULTIPART_OVERHEAD:
        raise BadInput(413, too_large, "too_large")
    part = await _file_part(request)
    try:
        sent_as = text(part.filename or "", "file name", 1000)[:200]
    except (BadInput, ValueError, LookupError):
        sent_as = "?"
    with tempfile.TemporaryDirectory(prefix="pbx-upload-") as tmp:
        path = Path(tmp) / "upload"
        size = 0
        try:
            with open(path, "wb") as f:
                while chunk := await part.read_chunk(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise BadInput(413, too_large, "too_large")
                    f.write(chunk)
        except _BROKEN_FORM:
            raise BadInput(400, "the upload was cut short or is not a valid form") from None
        yield Upload(path, size, sent_as)
