"""pbx-app names: makes the spoken names of the policy's employees (announcements/names.py) in
the announcements folder Asterisk reads. Run once for the whole site and again after an import
of employees: each run makes only the names that are missing or whose ``name`` changed, and
never replaces a recording. A name that cannot be made is reported; its employee's extension is
said instead, as before."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from ..policy import PolicyError
from ..policy.loader import load_policy
from ..settings import Settings
from .names import SpokenNames


def add_names_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("extensions", nargs="*", help="only these employees (default: every employee of the policy)")
    p.add_argument("--policy", help="policy file (default: $PBX_POLICY or config/policy.yaml)")
    p.add_argument("--again", action="store_true", help="make them again even when up to date (recordings are kept)")


def cmd_names(args: argparse.Namespace) -> int:
    settings = Settings.from_env(need_ari=False)
    path = Path(args.policy) if args.policy else settings.policy_path
    try:
        policy = load_policy(path)
    except (PolicyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    employees = [e for ext, e in sorted(policy.employees.items()) if not args.extensions or ext in args.extensions]
    unknown = sorted(set(args.extensions) - set(policy.employees))
    for ext in unknown:
        print(f"error: {path}: no employee {ext}", file=sys.stderr)
    names = SpokenNames(settings.announcements_dir)
    if args.again:
        for e in employees:
            if names.get(e.extension).kind == "made":
                names.remove(e.extension)
    started = time.monotonic()
    done = asyncio.run(names.make_missing(employees))
    for ext, why in sorted(done.failed.items()):
        print(f"error: {ext}: {why} (its extension is said instead)", file=sys.stderr)
    print(f"{names.folder}: {len(done.made)} name(s) made, {done.kept} up to date or recorded, "
          f"{len(done.failed)} failed, in {time.monotonic() - started:.1f} s")
    return 1 if done.failed or unknown else 0
