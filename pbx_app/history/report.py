"""`pbx-app history`: the call history for a period, as a table for a person or CSV/JSON for a
spreadsheet or another program. Names come from the policy file when it can be read. The rows
are streamed, a batch of calls at a time (the database filters them): a year of a million
calls prints in flat memory, its first lines at once. `pbx-app history backup FILE` copies the
SQLite journal (backup.py)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from pathlib import Path
from typing import AsyncIterator

from ..db.errors import StoreError
from ..policy import PolicyError, load_policy
from ..settings import Settings
from .backup import BackupError, backup
from .database import open_store
from .journal import replay
from .rows import HistoryRow, history_row
from .store import CallFilter

DEFAULT_DAYS = 7
BATCH = 1000  # calls read at a time
CSV_COLUMNS = ("call_id", "started_at", "caller", "employee", "employee_name", "label", "status", "dialled",
               "dialled_name", "forwarded_from", "department", "department_name", "answered_at", "ended_at",
               "waited_s", "talked_s", "what_happened")


@dataclass(frozen=True)
class Names:
    employees: dict[str, str] = field(default_factory=dict)
    departments: dict[str, str] = field(default_factory=dict)

    def person(self, ext: str | None) -> str:
        """'102 Petr Ivanov', or the bare extension when the policy does not know it."""
        if not ext:
            return ""
        name = self.employees.get(ext)
        return f"{ext} {name}" if name else ext


def names_from_policy(path: Path | None) -> tuple[Names, str | None]:
    """Names from the policy, and a warning when it could not be read (the history still shows)."""
    if path is None:
        return Names(), None
    try:
        policy = load_policy(path)
    except (PolicyError, OSError) as exc:
        return Names(), f"names not shown: cannot read the policy {path} ({str(exc).splitlines()[0]})"
    return names_of(policy), None


def names_of(policy) -> Names:
    return Names({e: emp.name for e, emp in policy.employees.items()}, {d: dep.name for d, dep in policy.departments.items()})


def parse_when(text: str, end: bool = False) -> datetime:
    """A date (the whole day: --to includes it) or a date and time; local time unless it says."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day + timedelta(days=1) if end else day, time())
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    return moment if moment.tzinfo else moment.astimezone()  # naive: the machine's local time


def _local(moment: datetime | None, tz: tzinfo | None = None) -> datetime | None:
    return None if moment is None else moment.astimezone(tz)  # tz None: the machine's local time


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    value = round(value)
    return f"{value // 60}m{value % 60:02d}s" if value >= 60 else f"{value}s"


def employee_cell(row: HistoryRow, names: Names) -> str:
    cell = names.person(row.employee)
    return f"{cell} [{row.label}]" if row.label else cell


def details(row: HistoryRow, names: Names) -> str:
    if row.forwarded_from:
        return f"for {names.person(row.forwarded_from)}: {row.what_happened}"
    return row.what_happened


def as_table(rows: list[HistoryRow], names: Names, widths: list[int] | None = None) -> str:
    header = ("Started", "Caller", "Employee", "Status", "Waited", "Talked", "What happened")
    body = [
        (
            _local(r.started_at).strftime("%Y-%m-%d %H:%M:%S") if r.started_at else "?",
            r.caller,
            employee_cell(r, names),
            r.status,
            _seconds(r.waited),
            _seconds(r.talked),
            details(r, names),
        )
        for r in rows
    ]
    widths = widths or [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    out = io.StringIO()
    for line in [header, tuple("-" * w for w in widths), *body]:
        out.write("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)).rstrip() + "\n")
    missed = sum(r.missed for r in rows)
    out.write(f"{len(rows)} calls, {missed} missed\n")
    return out.getvalue()


def as_dicts(rows: list[HistoryRow], names: Names, tz: tzinfo | None = None) -> list[dict]:
    def when(moment: datetime | None) -> str | None:
        return None if moment is None else _local(moment, tz).isoformat(timespec="seconds")

    return [
        {
            "call_id": r.call_id,
            "started_at": when(r.started_at),
            "caller": r.caller,
            "employee": r.employee,
            "employee_name": names.employees.get(r.employee, ""),
            "label": r.label or "",
            "status": r.status,
            "dialled": r.dialled,
            "dialled_name": names.employees.get(r.dialled, ""),
            "forwarded_from": r.forwarded_from or "",
            "department": r.department or "",
            "department_name": names.departments.get(r.department or "", ""),
            "answered_at": when(r.answered_at),
            "ended_at": when(r.ended_at),
            "waited_s": None if r.waited is None else round(r.waited, 1),
            "talked_s": None if r.talked is None else round(r.talked, 1),
            "what_happened": r.what_happened,
        }
        for r in rows
    ]


def as_csv(rows: list[HistoryRow], names: Names) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for d in as_dicts(rows, names):
        writer.writerow({k: "" if v is None else v for k, v in d.items()})
    return out.getvalue()


def as_json(rows: list[HistoryRow], names: Names) -> str:
    return json.dumps(as_dicts(rows, names), ensure_ascii=False, indent=2) + "\n"


async def stream_rows(database_url: str, spool_dir: Path | None, f: CallFilter,
                      warnings: list[str]) -> AsyncIterator[list[HistoryRow]]:
    """The rows the filter keeps, a batch at a time; first ships what the spool holds that the
    database lacks (the app may be stopped, or behind). Warnings go to ``warnings``."""
    store = open_store(database_url)
    try:
        if spool_dir is not None and spool_dir.is_dir():
            try:
                await replay(spool_dir, store)
            except OSError as exc:
                warnings.append(f"the spool {spool_dir} could not be read ({exc}); recent calls may be missing")
        async for calls in store.batches(f, BATCH):
            yield [history_row(c) for c in calls]
    finally:
        await store.close()


class _Writer:
    """One output format, written a batch at a time."""

    def __init__(self, fmt: str, names: Names, out):
        self.fmt, self.names, self.out = fmt, names, out
        self.count = self.missed = 0
        self.widths: list[int] | None = None

    def batch(self, rows: list[HistoryRow]) -> None:
        first = self.count == 0
        self.count += len(rows)
        self.missed += sum(r.missed for r in rows)
        if self.fmt == "csv":
            text = as_csv(rows, self.names)
            self.out.write(text if first else text.split("\n", 1)[1])
        elif self.fmt == "json":
            items = [json.dumps(d, ensure_ascii=False, indent=2) for d in as_dicts(rows, self.names)]
            self.out.write(("[\n" if first else ",\n") + ",\n".join(items))
        else:
            table = as_table(rows, self.names, self.widths).splitlines(keepends=True)
            if self.widths is None:  # the first batch sets the columns; later ones keep them
                self.widths = [len(c) for c in table[1].split("  ")]
            self.out.write("".join(table[:-1] if first else table[2:-1]))

    def end(self) -> None:
        if self.fmt == "json":
            self.out.write("[]\n" if self.count == 0 else "\n]\n")
        elif self.fmt == "csv":
            if self.count == 0:
                self.out.write(as_csv([], self.names))
        else:
            if self.count == 0:
                self.out.write("".join(as_table([], self.names).splitlines(keepends=True)[:-1]))
            self.out.write(f"{self.count} calls, {self.missed} missed\n")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="*", metavar="backup FILE",
                   help="`backup FILE`: copy the SQLite journal to FILE, safely while engines write")
    p.add_argument("--from", dest="start", type=parse_when, help=f"from this date or time (default: {DEFAULT_DAYS} days ago)")
    p.add_argument("--to", dest="end", type=lambda t: parse_when(t, end=True), help="up to this date (whole day) or time (default: now)")
    p.add_argument("--employee", help="only calls counted for this extension")
    p.add_argument("--missed", action="store_true", help="only missed calls")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--database", help="database URL (default: $PBX_DATABASE_URL or the app's default)")
    p.add_argument("--spool", type=Path, help="the app's journal spool (default: $PBX_SPOOL_DIR or the app's default)")
    p.add_argument("--policy", type=Path, help="policy file for names (default: $PBX_POLICY or config/policy.yaml)")


def cmd_history(args: argparse.Namespace) -> int:
    database = args.database or os.environ.get("PBX_DATABASE_URL") or Settings.database_url
    if args.action:
        if len(args.action) != 2 or args.action[0] != "backup":
            print("error: `pbx-app history backup FILE` is the only action (or no action: show the history)", file=sys.stderr)
            return 2
        try:
            took = backup(database, Path(args.action[1]))
        except BackupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"the journal {database} copied to {args.action[1]} in {took:.1f} s")
        return 0
    spool = args.spool or Path(os.environ.get("PBX_SPOOL_DIR") or Settings.spool_dir)
    policy = args.policy or Path(os.environ.get("PBX_POLICY") or Settings.policy_path)
    end = args.end or datetime.now(timezone.utc)
    start = args.start or datetime.combine(date.today() - timedelta(days=DEFAULT_DAYS), time()).astimezone()
    if start >= end:
        print("error: --from must be before --to", file=sys.stderr)
        return 2
    names, names_warning = names_from_policy(policy if policy.exists() else None)
    if names_warning:
        print(f"warning: {names_warning}", file=sys.stderr)
    f = CallFilter(start, end, counted_for=args.employee, missed=args.missed, newest_first=False)
    return asyncio.run(_print(database, spool, f, _Writer(args.format, names, sys.stdout)))


async def _print(database: str, spool: Path, f: CallFilter, writer: _Writer) -> int:
    warnings: list[str] = []
    try:
        async for rows in stream_rows(database, spool, f, warnings):
            for w in warnings:
                print(f"warning: {w}", file=sys.stderr)
            warnings.clear()
            writer.batch(rows)
    except (StoreError, ValueError) as exc:
        print(f"error: cannot read the call journal: {exc}", file=sys.stderr)
        return 1
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    writer.end()
    return 0
