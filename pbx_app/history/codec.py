"""Journal events to one line of JSON and back: the spool's format. A line names its event
type; fields a newer app added are ignored by an older one, fields it lacks take their
defaults, so a spool written by one version replays under the next."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

from ..db.codec import BadTime, iso, parse_time
from .events import CallEnded, CallStarted, JournalEvent, LegEnded, LegStarted

EVENT_TYPES: dict[str, type] = {cls.__name__: cls for cls in (CallStarted, LegStarted, LegEnded, CallEnded)}
FORMAT = 1


class BadLine(ValueError):
    """A spool line that is not a journal event (torn by a crash, or written by something else)."""


def encode(event: JournalEvent) -> bytes:
    body: dict[str, Any] = {"v": FORMAT, "type": type(event).__name__}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, datetime):
            value = iso(value)
        elif isinstance(value, tuple):
            value = list(value)
        body[f.name] = value
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> JournalEvent:
    try:
        body = json.loads(line)
        cls = EVENT_TYPES[body["type"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise BadLine(f"not a journal event ({exc.__class__.__name__}: {exc})") from None
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in body:
            continue
        value = body[f.name]
        if f.name in ("at", "answered_at") and value is not None:
            try:
                value = parse_time(value)
            except BadTime as exc:
                raise BadLine(str(exc)) from None
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise BadLine(f"{body['type']}: {exc}") from None

