"""The test bed's lock: whatever binds 127.0.0.1:5060/8088 or SIPp's ports holds it, so runs
from several worktrees on this machine queue up instead of clashing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import IO

import pytest

LOCK = Path(os.environ.get("PBX_TESTBED_CACHE", "/var/cache/pbx_app")) / "testbed.lock"


def take_lock(timeout: float = 1800) -> IO:
    """The lock, held until the returned file is closed; a failure, not a hang, if it never
    comes (another run keeps it, or this session already holds it through another fixture).
    flock(1) waits in the kernel's queue, in turn with the scripts that take the same lock, and
    the lock it takes stays with the file this process keeps open."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    lock = open(LOCK, "w")
    fd = lock.fileno()
    waited = subprocess.run(["flock", "-w", str(timeout), str(fd)], pass_fds=[fd])
    if waited.returncode != 0:
        lock.close()
        pytest.fail(f"{LOCK} still held after {timeout} s", pytrace=False)
    return lock
