"""The journal's spool: append-only files of JSON lines on local disk, written before the flow
goes on and fsync'd soon after, so a row survives a crash of the app (or of the machine) and an
outage of the database. The shipper reads it forward from a position and replays it into the
database.

Layout of the spool folder:
    spool.id            this spool's name (a uuid); the database keeps how far it has shipped
                        each spool by this name, so several apps can share one database
    lock                flock'd by the one app that writes here
    00000001.jsonl ...  segments, written in order; a full one (past ``segment_bytes``) is
                        closed and the next begun; shipped ones are deleted
    rejected.jsonl      lines that were not events (a line torn by a power cut), kept for a person
                        (at most 10 MB, and the 10 MB before in rejected.jsonl.1)

Only whole lines count: a line is complete once its newline is on disk. A crash can leave a
torn tail; the writer ends it with a newline when it opens the segment again, the shipper
then finds a line that is not an event and sets it aside."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..private_files import open_private, private_dir

log = logging.getLogger(__name__)

REJECTED_BYTES = 10 * 1024 * 1024

SEGMENT = re.compile(r"^(\d{8})\.jsonl$")
DEFAULT_SEGMENT_BYTES = 8 << 20


class SpoolBusy(RuntimeError):
    """Another process writes to this spool folder."""


@dataclass(frozen=True, order=True)
class Position:
    """Where the next unread line starts: segment number and byte offset in it."""

    segment: int
    offset: int

    def __str__(self) -> str:
        return f"{self.segment}:{self.offset}"


def segment_path(directory: Path, number: int) -> Path:
    return directory / f"{number:08d}.jsonl"


def segments(directory: Path) -> list[int]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(SEGMENT.match, names) if m)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def spool_id(directory: Path, create: bool = False) -> str | None:
    path = directory / "spool.id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        if not create:
            return None
    tmp = directory / "spool.id.tmp"
    with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_TRUNC), "w") as f:
        f.write(uuid.uuid4().hex + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(directory)
    return path.read_text().strip()


@dataclass
class Unsynced:
    """What the next fsync must cover: the writer's state when it was taken."""

    end: Position  # everything before it is on disk once the sync returns
    fd: int
    full: list[int]  # segments rolled over since the last sync: fsync'd, then closed
    new_entry: bool  # a segment was created since: the folder's entry needs an fsync too


class SpoolWriter:
    """Appends lines. One writer per folder (an flock says so).

    ``write`` puts whole lines in the page cache, so from then on they outlive the app (a crash,
    a SIGKILL) and the reader sees them; ``sync`` makes them outlive the machine. They are apart
    so that the app can write on its event loop (a few µs, no thread hop) and fsync on a thread of
    its own, one fsync for everything written since the last. Not thread-safe otherwise: the
    journal calls ``write`` and ``unsynced`` from one thread at a time."""

    def __init__(self, directory: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES):
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._full: list[int] = []
        self._new_entry = False
        self.segment = 0
        self.size = 0
        self.id = ""

    def open(self) -> "SpoolWriter":
        private_dir(self.directory)
        self._lock_fd = open_private(self.directory / "lock", os.O_RDWR)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise SpoolBusy(f"{self.directory}: another pbx-app writes its journal here") from None
        self.id = spool_id(self.directory, create=True) or ""
        existing = segments(self.directory)
        number = existing[-1] if existing else 1
        path = segment_path(self.directory, number)
        fd = open_private(path, os.O_WRONLY | os.O_APPEND)
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    # A crash tore the last line: end it, so the next line stands on its own.
                    os.write(fd, b"\n")
                    os.fsync(fd)
                    size += 1
                    log.warning("journal spool %s: a torn last line was closed off", path)
        else:
            _fsync_dir(self.directory)
        self._fd, self.segment, self.size = fd, number, size
        return self

    @property
    def position(self) -> Position:
        return Position(self.segment, self.size)

    def write(self, lines: list[bytes]) -> Position:
        """Writes whole lines (not fsync'd); the position after them."""
        assert self._fd is not None, "open() first"
        data = b"".join(lines)
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            # Disk full or failing: take back a part-written batch, so the retry starts on a
            # line boundary (a duplicate of a line that did land is harmless: replays are).
            try:
                os.ftruncate(self._fd, self.size)
            except OSError:
                pass
            raise
        self.size += len(data)
        end = self.position
        if self.size >= self.segment_bytes:
            # The next segment's folder entry is made durable by the next sync, not here: write
            # runs on the app's event loop, which must not wait for a folder's fsync.
            fd = open_private(segment_path(self.directory, self.segment + 1), os.O_WRONLY | os.O_APPEND)
            self._full.append(self._fd)
            self._fd, self.segment, self.size = fd, self.segment + 1, 0
            self._new_entry = True
        return end

    def unsynced(self) -> Unsynced:
        """Takes what the next ``sync`` must cover; give it back if the sync fails."""
        assert self._fd is not None, "open() first"
        job = Unsynced(self.position, self._fd, self._full, self._new_entry)
        self._full, self._new_entry = [], False
        return job

    def give_back(self, job: Unsynced) -> None:
        self._full[:0] = job.full
        self._new_entry = self._new_entry or job.new_entry

    def sync(self, job: Unsynced) -> Position:
        """fsyncs what ``job`` covers. Any thread, one sync at a time (a full segment is closed
        here)."""
        for fd in job.full:
            os.fsync(fd)
        if job.new_entry:
            _fsync_dir(self.directory)
        os.fsync(job.fd)
        for fd in job.full:
            os.close(fd)
        job.full.clear()
        return job.end

    def close(self) -> None:
        for fd in (*self._full, self._fd, self._lock_fd):
            if fd is not None:
                os.close(fd)
        self._full = []
        self._fd = self._lock_fd = None


class SpoolReader:
    """Reads whole lines forward from a position; finds its way across segments."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def start(self) -> Position:
        existing = segments(self.directory)
        return Position(existing[0] if existing else 1, 0)

    def read(self, pos: Position, max_lines: int = 500, max_bytes: int = 1 << 20) -> tuple[list[tuple[Position, bytes]], Position]:
        """Up to ``max_lines`` complete lines from ``pos``, each with its own position, and the
        position after the last one."""
        lines: list[tuple[Position, bytes]] = []
        while len(lines) < max_lines:
            existing = segments(self.directory)
            later = [n for n in existing if n > pos.segment]
            if pos.segment not in existing:
                if not later:
                    return lines, pos
                pos = Position(later[0], 0)  # shipped and removed, or never written
                continue
            try:
                with open(segment_path(self.directory, pos.segment), "rb") as f:
                    f.seek(pos.offset)
                    data = f.read(max_bytes)
            except FileNotFoundError:
                continue
            # A later segment exists: the writer is done with this one, so its tail is final.
            complete = bool(later) and len(data) < max_bytes
            offset = pos.offset
            for raw in data.splitlines(keepends=True):
                if len(lines) >= max_lines or not (raw.endswith(b"\n") or complete):
                    break  # the writer is still writing this line
                lines.append((Position(pos.segment, offset), raw))
                offset += len(raw)
            pos = Position(pos.segment, offset)
            if complete and len(lines) < max_lines:
                pos = Position(later[0], 0)
                continue
            return lines, pos
        return lines, pos

    def remove_shipped(self, pos: Position, writing: int | None = None) -> list[int]:
        """Deletes segments wholly before ``pos`` (never the one being written)."""
        removed = []
        for n in segments(self.directory):
            if n < pos.segment and n != writing:
                try:
                    segment_path(self.directory, n).unlink()
                    removed.append(n)
                except FileNotFoundError:
                    pass
        return removed

    def reject(self, line: bytes, why: str) -> None:
        """Keeps a line that is not an event where a person can look at it. A torn line is one
        per crash, but a spool damaged otherwise must not fill the disk: past REJECTED_BYTES the
        file becomes rejected.jsonl.1 (the one before it dropped)."""
        path = self.directory / "rejected.jsonl"
        try:
            if path.stat().st_size + len(line) > REJECTED_BYTES:
                os.replace(path, path.with_name("rejected.jsonl.1"))
        except FileNotFoundError:
            pass
        with os.fdopen(open_private(path, os.O_WRONLY | os.O_APPEND), "ab") as f:
            f.write(line.rstrip(b"\n") + b"\n")
            f.flush()
            os.fsync(f.fileno())
        log.error("journal spool %s: a line is not an event (%s); kept in rejected.jsonl", self.directory, why)
