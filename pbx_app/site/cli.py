"""`pbx-app asterisk install`: add pbx_app to a site's existing Asterisk configuration."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .conffile import ConfError
from .install import Options, Plan, plan_install, plan_undo
from .write import apply


def add_asterisk_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("asterisk", help="add pbx_app to an existing Asterisk configuration (docs/install-debian.md)")
    cmds = p.add_subparsers(dest="asterisk_command", required=True)
    i = cmds.add_parser("install", help="add the ARI user, HTTP binding, #include, CDR settings; idempotent, "
                                        "with backups; --undo takes it all out")
    i.add_argument("--etc", type=Path, default=Path("/etc/asterisk"), help="Asterisk's folder (default /etc/asterisk)")
    i.add_argument("--dry-run", action="store_true", help="show what would change (a diff), change nothing")
    i.add_argument("--undo", action="store_true", help="take out everything an install added")
    i.add_argument("--secret-file", type=Path, default=Path("/etc/pbx_app/ari-password"),
                   help="where the engines read the ARI password (mode 0600; default /etc/pbx_app/ari-password)")
    i.add_argument("--ari-user", default="pbx_app", help="the engines' ARI user (default pbx_app)")
    i.add_argument("--http", default="127.0.0.1:8088", help="ARI's HOST:PORT when Asterisk's HTTP server is off "
                                                            "(default 127.0.0.1:8088)")
    i.add_argument("--decline-varset", action="store_true",
                   help="stasis.conf: no ChannelVarset messages (~1 ms of Asterisk CPU a call; AMI VarSet readers lose them)")
    i.set_defaults(func=cmd_install)


def _reason(exc: Exception) -> str:
    """A missing file says itself; another OS error names the file and what the system said."""
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def cmd_install(args: argparse.Namespace) -> int:
    opts = Options(etc=args.etc, secret_file=args.secret_file, ari_user=args.ari_user, http_bind=args.http,
                   decline_varset=args.decline_varset)
    try:
        plan = plan_undo(opts) if args.undo else plan_install(opts)
    except (ConfError, OSError) as exc:
        print(f"error: nothing changed: {_reason(exc)}", file=sys.stderr)
        return 2
    if args.dry_run:
        _show(plan)
        return 0
    try:
        backup = apply(plan, opts.etc)
    except OSError as exc:
        print(f"error: {exc.filename}: {exc.strerror} (the files changed so far are backed up in "
              f"{opts.etc}/pbx_app-backup)", file=sys.stderr)
        return 1
    if backup is None:
        print(f"{opts.etc}: nothing to change")
    else:
        for change in plan.pending:
            print(f"{'removed' if change.after is None else 'created' if change.before is None else 'changed'} {change.path}")
        print(f"backup of what was there: {backup}")
        print("then tell Asterisk (calls in progress go on):")
        for command in ([] if args.undo else plan.after) or ["asterisk -rx 'core reload'"]:
            print(f"    {command}")
    for note in plan.notes:
        print(f"note: {note}")
    return 0


def _show(plan: Plan) -> None:
    for change in plan.pending:
        sys.stdout.write(change.diff())
    if not plan.pending:
        print("nothing to change")
    for note in plan.notes:
        print(f"note: {note}")
