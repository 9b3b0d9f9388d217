"""The policy in force, and how it changes: on SIGHUP or when the file (or a file of a policy
directory) changes (mtimes are polled, about once a second) the file is read and checked again. A good file applies to new
calls — a call keeps the Policy it started with — and a broken one is refused with every error
logged at its file:line:column, while the last good policy stays in force."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from .folder import folder_stamp
from .loader import analyse_file
from .model import Policy
from .problems import PolicyError
from .swap import read_in_child, read_in_child_now, retire

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0  # s


def stamp(path: Path) -> tuple | None:
    """What changes when the policy does: a file's mtime, size and inode; a directory's, each of
    its files' (a file added, removed or edited in place)."""
    try:
        if path.is_dir():
            return folder_stamp(path)
        return _file_stamp(path)
    except OSError:
        return None


def _file_stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size, st.st_ino


class PolicyStore:
    def __init__(self, path: str | Path, announcements_dir: str | Path | None = None):
        self.path = Path(path)
        self.announcements_dir = announcements_dir
        self._stamp = self._stat()
        analysis = read_in_child_now(self.path, announcements_dir)
        if analysis.errors:
            raise PolicyError(analysis.errors)
        self._warn(analysis.warnings)
        self.current: Policy = analysis.policy  # type: ignore[assignment]
        self.last_error: PolicyError | None = None  # the refused file's errors, until a good one
        self.reloads = {"ok": 0, "refused": 0}  # since start (read by /metrics)

    def __call__(self) -> Policy:
        return self.current

    def reload(self) -> bool:
        """Reads the file again; True if its policy is now in force."""
        self._stamp = self._stat()  # before reading: a write during the read is seen next poll
        return self._apply(analyse_file(self.path, self.announcements_dir))

    async def reload_off_loop(self) -> bool:
        """The same, with the reading and checking in a child process: a big policy takes a
        second to parse, and calls in progress must not wait for it (swap.py)."""
        self._stamp = await asyncio.to_thread(self._stat)  # a directory's 10,000 stats: 40 ms
        analysis = await read_in_child(self.path, self.announcements_dir)
        return self._apply(analysis, retire)

    def _apply(self, analysis, retire_old=None) -> bool:
        if analysis.errors:
            self.last_error = PolicyError(analysis.errors)
            log.error(
                "policy %s refused (%d error(s)), the last good policy stays in force:\n%s",
                self.path, len(analysis.errors), self.last_error,
            )
            self.reloads["refused"] += 1
            return False
        self._warn(analysis.warnings)
        old, self.current = self.current, analysis.policy  # type: ignore[assignment]
        if retire_old is not None:
            retire_old(old)
        del old
        self.last_error = None
        self.reloads["ok"] += 1
        log.info(
            "policy reloaded from %s (%d employees, %d departments): it applies to new calls",
            self.path, len(self.current.employees), len(self.current.departments),
        )
        return True

    def changed(self) -> bool:
        return self._stat() != self._stamp

    async def watch(self, interval: float = POLL_INTERVAL) -> None:
        """Reloads whenever the file changes; runs until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                if await asyncio.to_thread(self.changed):  # a directory's 10,000 files: not on the loop
                    await self.reload_off_loop()
            except Exception:  # the watcher must outlive any surprise; the policy in force stays
                log.exception("policy %s: watching it failed", self.path)

    def _stat(self) -> tuple | None:
        return stamp(self.path)

    def _warn(self, warnings) -> None:
        for w in warnings:
            log.warning("policy warning: %s", w)
