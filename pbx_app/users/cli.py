"""`pbx-app user add|passwd|list|remove`: manage who may sign in to the web page."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from .store import ROLES, UserError, UserStore

DEFAULT_USERS = "var/users.json"


def add_user_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("user", help="manage web page users (argon2-hashed passwords)")
    p.add_argument("--users", help=f"users file (default: $PBX_USERS or {DEFAULT_USERS})")
    users = p.add_subparsers(dest="user_command", required=True)

    a = users.add_parser("add", help="create a user; the password is asked for, or read from --password-file")
    a.add_argument("name")
    a.add_argument("--role", choices=ROLES, required=True)
    a.add_argument("--extension", help="the employee's own number (required for employees)")
    a.add_argument("--display-name", help="shown on the page (default: the employee's name in the policy)")
    a.add_argument("--password-file", help="read the password from this file's first line ('-': stdin)")
    a.set_defaults(func=cmd_add)

    w = users.add_parser("passwd", help="set a new password")
    w.add_argument("name")
    w.add_argument("--password-file")
    w.set_defaults(func=cmd_passwd)

    ls = users.add_parser("list", help="list users (never their hashes)")
    ls.set_defaults(func=cmd_list)

    rm = users.add_parser("remove", help="delete a user")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_remove)


def _store(args: argparse.Namespace) -> UserStore:
    return UserStore(Path(args.users or os.environ.get("PBX_USERS", DEFAULT_USERS)))


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
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    store = _store(args)

    def add() -> None:
        user = store.add(args.name, args.role, args.extension, _password(args), args.display_name)
        ext = f", extension {user.extension}" if user.extension else ""
        print(f"{store.path}: added {user.name} ({user.role}{ext})")

    return _run(add)


def cmd_passwd(args: argparse.Namespace) -> int:
    store = _store(args)
    return _run(lambda: (store.set_password(args.name, _password(args)), print(f"{store.path}: password of {args.name} changed")))


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)

    def show() -> None:
        for user in store.load().values():
            print(f"{user.name}\t{user.role}\t{user.extension or '-'}\t{user.display_name or ''}")

    return _run(show)


def cmd_remove(args: argparse.Namespace) -> int:
    store = _store(args)
    return _run(lambda: (store.remove(args.name), print(f"{store.path}: removed {args.name}")))
