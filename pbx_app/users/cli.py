"""`pbx-app user add|passwd|list|remove|disable|enable|role|invite|import`: manage who may sign in
to the web page, in the accounts' database (the journal's, PBX_DATABASE_URL)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from .database import AccountsDatabase, DatabaseError
from .legacy_file import import_once
from .links import Links
from .store import ROLES, UserError, UserStore

DEFAULT_DATABASE = "sqlite:////var/lib/pbx_app/journal.db"
DEFAULT_USERS = "var/users.json"


def add_user_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("user", help="manage web page users (kept in the journal's database)")
    p.add_argument("--database", help=f"database URL (default: $PBX_DATABASE_URL or {DEFAULT_DATABASE})")
    p.add_argument("--users", help=f"an older users file, imported once (default: $PBX_USERS or {DEFAULT_USERS})")
    users = p.add_subparsers(dest="user_command", required=True)

    a = users.add_parser("add", help="create a user; the password is asked for, or read from --password-file")
    a.add_argument("name")
    a.add_argument("--role", choices=ROLES, required=True)
    a.add_argument("--extension", help="the employee's own number (required for employees)")
    a.add_argument("--display-name", help="shown on the page (default: the employee's name in the policy)")
    a.add_argument("--email", help="where invitation and reset links go")
    a.add_argument("--password-file", help="read the password from this file's first line ('-': stdin)")
    a.set_defaults(func=cmd_add)

    w = users.add_parser("passwd", help="set a new password (every session of the user ends)")
    w.add_argument("name")
    w.add_argument("--password-file")
    w.set_defaults(func=cmd_passwd)

    ls = users.add_parser("list", help="list users (never their hashes)")
    ls.set_defaults(func=cmd_list)

    rm = users.add_parser("remove", help="delete a user")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_remove)

    for verb, disabled in (("disable", True), ("enable", False)):
        d = users.add_parser(verb, help=f"{verb} an account (disabling ends its sessions)")
        d.add_argument("name")
        d.set_defaults(func=cmd_disable, disabled=disabled)

    r = users.add_parser("role", help="set a user's role (and extension)")
    r.add_argument("name")
    r.add_argument("--role", choices=ROLES, required=True)
    r.add_argument("--extension")
    r.set_defaults(func=cmd_role)

    i = users.add_parser("invite", help="print a one-time link that sets the password (a new or a forgotten one)")
    i.add_argument("name")
    i.add_argument("--base-url", default=os.environ.get("PBX_WEB_URL", "http://localhost:8080"),
                   help="the page's address as users reach it (default: $PBX_WEB_URL)")
    i.set_defaults(func=cmd_invite)

    im = users.add_parser("import", help="copy the older users file into the database (once)")
    im.set_defaults(func=cmd_import)


def _db(args: argparse.Namespace) -> AccountsDatabase:
    return AccountsDatabase(args.database or os.environ.get("PBX_DATABASE_URL", DEFAULT_DATABASE))


def _users_file(args: argparse.Namespace) -> Path:
    return Path(args.users or os.environ.get("PBX_USERS", DEFAULT_USERS))


def _store(args: argparse.Namespace) -> UserStore:
    db = _db(args)
    import_once(db, _users_file(args))  # a CLI run on an upgraded host sees the old users too
    return UserStore(db)


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        src = sys.stdin if args.password_file == "-" else open(args.password_file, encoding="utf-8")
        with src:
            return src.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ")
    return first


def _run(action) -> int:
    try:
        action()
    except (UserError, DatabaseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    def add() -> None:
        store = _store(args)
        user = store.add(args.name, args.role, args.extension, _password(args), args.display_name, args.email)
        ext = f", extension {user.extension}" if user.extension else ""
        print(f"{store.where}: added {user.name} ({user.role}{ext})")

    return _run(add)


def cmd_passwd(args: argparse.Namespace) -> int:
    def passwd() -> None:
        store = _store(args)
        store.set_password(args.name, _password(args))
        print(f"{store.where}: password of {args.name} changed; the user's sessions have ended")

    return _run(passwd)


def cmd_list(args: argparse.Namespace) -> int:
    def show() -> None:
        for user in _store(args).load().values():
            state = "disabled" if user.disabled else ("waiting for its link" if user.pending else "active")
            print(f"{user.name}\t{user.role}\t{user.extension or '-'}\t{user.source}\t{state}\t{user.display_name or ''}")

    return _run(show)


def cmd_remove(args: argparse.Namespace) -> int:
    def remove() -> None:
        store = _store(args)
        store.remove(args.name)
        print(f"{store.where}: removed {args.name}")

    return _run(remove)


def cmd_disable(args: argparse.Namespace) -> int:
    def switch() -> None:
        store = _store(args)
        store.set_disabled(args.name, args.disabled)
        print(f"{store.where}: {args.name} {'disabled' if args.disabled else 'enabled'}")

    return _run(switch)


def cmd_role(args: argparse.Namespace) -> int:
    def role() -> None:
        store = _store(args)
        store.set_role(args.name, args.role, args.extension)
        print(f"{store.where}: {args.name} is now {args.role}")

    return _run(role)


def cmd_invite(args: argparse.Namespace) -> int:
    def invite() -> None:
        store = _store(args)
        user = store.get(args.name)
        if user is None:
            raise UserError(f"no user '{args.name}'")
        link = Links(store.db).issue(args.name, "invite" if user.pending else "reset", "cli")
        print(f"{args.base_url.rstrip('/')}/account/link/{link.token}")

    return _run(invite)


def cmd_import(args: argparse.Namespace) -> int:
    def do_import() -> None:
        db = _db(args)
        copied = import_once(db, _users_file(args))
        if copied is None:
            print(f"{db.where}: nothing to import (no file at {_users_file(args)}, or imported before)")
        else:
            print(f"{db.where}: imported {copied} user(s) from {_users_file(args)}")

    return _run(do_import)
