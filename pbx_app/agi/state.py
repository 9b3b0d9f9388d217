"""What a call in FastAGI mode keeps on its own channel between requests, so that any AGI
server (this one restarted, or another one) can take the next request: the plan (PBX_PLAN*,
story/codec.py, as in ARI mode) and PBX_STATE, where the call stands — ``branch:index:leg:dialled:MAC``
(story.Cursor), or ``end`` once its journal is closed. MAC signs the cursor, the plan and the
channel's uniqueid with the key from the shared secret (secret.py): `next` and `hangup` are
refused for a state or plan anyone altered, or one copied from another call."""

from __future__ import annotations

import base64
import hashlib
import hmac

from ..story.story import ENDED

__all__ = ["ENDED", "BadSignature", "sign", "verify"]


class BadSignature(ValueError):
    pass


def _mac(key: bytes, call_id: str, cursor: str, plan: str) -> str:
    digest = hmac.new(key, "\n".join((call_id, cursor, plan)).encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(key: bytes, call_id: str, cursor: str, plan: str) -> str:
    """PBX_STATE for ``cursor`` (Cursor.encode()) of the call ``call_id`` whose PBX_PLAN* is ``plan``."""
    return f"{cursor}:{_mac(key, call_id, cursor, plan)}"


def verify(key: bytes, call_id: str, state: str, plan: str) -> str:
    """The cursor of a PBX_STATE the server signed for this call and plan; BadSignature otherwise."""
    cursor, _, mac = state.rpartition(":")
    if not cursor or not hmac.compare_digest(mac.encode(), _mac(key, call_id, cursor, plan).encode()):
        raise BadSignature("the state or plan on the channel is not the one this server signed")
    return cursor
