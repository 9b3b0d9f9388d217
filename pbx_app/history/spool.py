"""The journal's spool: append-only files of JSON lines on local disk, written and fsync'd
before the flow goes on, so a row survives a crash of the app (or of the machine) and an
outage of the database. The shipper reads it forward from a position and replays it into the
database.

Layout of the spool folder:
    spool.id            this spool's name (a uuid); the database keeps how far it has shipped
                        each spool by this name, so several apps can share one database
    lock                flock'd by the one app that writes here
    00000001.jsonl ...  segments, written in order; a full one (past ``segment_bytes``) is
                        closed and the next begun; shipped ones are deleted
    rejected.jsonl      lines that were not events (a line torn by a power cut), kept for a person

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

log = logging.getLogger(__name__)

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
    with open(tmp, "w") as f:
        f.write(uuid.uuid4().hex + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(directory)
    return path.read_text().strip()


class SpoolWriter:
    """Appends lines durably. One writer per folder (an flock says so); not thread-safe: the
    journal calls it from one thread only."""

    def __init__(self, directory: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES):
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self.segment = 0
        self.size = 0
        self.id = ""

    def open(self) -> "SpoolWriter":
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise SpoolBusy(f"{self.directory}: another pbx-app writes its journal here") from None
        self.id = spool_id(self.directory, create=True) or ""
        existing = segments(self.directory)
        self._open_segment(existing[-1] if existing else 1)
        return self

    def _open_segment(self, number: int) -> None:
        path = segment_path(self.directory, number)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
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
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self.segment, self.size = fd, number, size

    def append(self, lines: list[bytes]) -> Position:
        """Writes the lines and fsyncs them; returns the position after them."""
        assert self._fd is not None, "open() first"
        data = b"".join(lines)
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError:
            # Disk full or failing: take back a part-written batch, so the retry starts on a
            # line boundary (a duplicate of a line that did land is harmless: replays are).
            try:
                os.ftruncate(self._fd, self.size)
            except OSError:
                pass
            raise
        self.size += len(data)
        end = Position(self.segment, self.size)
        if self.size >= self.segment_bytes:
            self._open_segment(self.segment + 1)
        return end

    def close(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                os.close(fd)
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
        """Keeps a line that is not an event where a person can look at it."""
        with open(self.directory / "rejected.jsonl", "ab") as f:
            f.write(line.rstrip(b"\n") + b"\n")
            f.flush()
            os.fsync(f.fileno())
        log.error("journal spool %s: a line is not an event (%s); kept in rejected.jsonl", self.directory, why)
