"""The test bed's lock: whatever binds 127.0.0.1:5060/8088 or SIPp's ports holds it, so runs
from several worktrees on this machine queue up instead of clashing."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

import pytest

from tests.support.wait import until_sync

LOCK = Path(os.environ.get("PBX_TESTBED_CACHE", "/var/cache/pbx_app")) / "testbed.lock"


def take_lock(timeout: float = 1800) -> IO:
    """The lock, held until the returned file is closed; a failure, not a hang, if it never
    comes (another run keeps it, or this session already holds it through another fixture)."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    lock = open(LOCK, "w")

    def taken() -> bool:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    try:
        until_sync(taken, timeout, f"{LOCK} free", every=1)
    except TimeoutError:
        lock.close()
        pytest.fail(f"{LOCK} still held after {timeout} s", pytrace=False)
    return lock
