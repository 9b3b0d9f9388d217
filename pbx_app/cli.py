"""pbx-app: run the call engines and the web page; check and explain a policy; manage web users; read the call history."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Callable

from .policy.commands import add_check_arguments, cmd_check

# Each command's code is imported only when that command runs: importing all of it (aiohttp,
# ldap3, psycopg, argon2, the page's templates) took 0.6 s of CPU, more than half of what
# `pbx-app check` may take for a 10,000-employee policy (1 s; bench/README.md "Scale — policy").
# "command": (module, function that adds its parser(s)) for the commands whose arguments are
# defined with their code.
_REGISTERED_ELSEWHERE = {
    "user": (".users.cli", "add_user_commands"),
    "asterisk": (".site.cli", "add_asterisk_commands"),
}


def _later(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """The handler ``module.function``, imported when its command runs."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module, __package__), function)(args)

    return run


def _command_in(argv: list[str]) -> str | None:
    """The command ``argv`` names (its first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = _command_in(argv)
    parser = argparse.ArgumentParser(prog="pbx-app", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run everything on this host: PBX_ENGINES call engines and the web page, as processes")
    p.add_argument("--policy", help="policy file (default: $PBX_POLICY or config/policy.yaml)")
    p.set_defaults(func=_later(".service_commands", "cmd_run"))

    p = sub.add_parser("engine", help="run one call engine (ARI app pbx_app-$PBX_ENGINE_NAME; settings from PBX_*)")
    p.add_argument("--policy", help="policy file (default: $PBX_POLICY or config/policy.yaml)")
    p.set_defaults(func=_later(".service_commands", "cmd_engine"))

    p = sub.add_parser("web", help="serve the self-service page in its own process (PBX_WEB_BIND; no ARI needed)")
    p.add_argument("--policy", help="policy file (default: $PBX_POLICY or config/policy.yaml)")
    p.set_defaults(func=_later(".service_commands", "cmd_web"))

    p = sub.add_parser("agi", help="run the FastAGI server for dialplan/pbx_agi.conf (docs/fastagi.md)")
    p.add_argument("--policy", help="policy file (default: $PBX_POLICY or config/policy.yaml)")
    p.add_argument("--bind", help="HOST:PORT to listen on (default: $PBX_AGI_BIND or 127.0.0.1:4573)")
    p.set_defaults(func=_later(".service_commands", "cmd_agi"))

    p = sub.add_parser("notify", help="send missed-call and voicemail notices: e-mail (PBX_SMTP_*) and webhook (PBX_NOTICE_WEBHOOK_URL)")
    p.add_argument("--policy", help="policy file (default: $PBX_POLICY or config/policy.yaml)")
    p.set_defaults(func=_later(".service_commands", "cmd_notify"))

    p = sub.add_parser("publish", help="check the policy file and publish it to PBX_POLICY_URL for every engine (docs/cluster.md)")
    p.add_argument("--policy", help="policy file (default: $PBX_POLICY or config/policy.yaml)")
    p.add_argument("--watch", action="store_true", help="keep running: publish the file again whenever it changes")
    p.set_defaults(func=_later(".service_commands", "cmd_publish"))

    p = sub.add_parser("names", help="make employees' spoken names (text-to-speech) for the mobile's confirm and the whisper")
    if command == "names" or command not in sub.choices:
        importlib.import_module(".announcements.names_command", __package__).add_names_arguments(p)
    p.set_defaults(func=_later(".announcements.names_command", "cmd_names"))

    p = sub.add_parser("check", help="validate a policy file; non-zero exit on errors")
    p.add_argument("file", nargs="?", default="config/policy.yaml")
    add_check_arguments(p)
    p.set_defaults(func=cmd_check)

    # Another command's parsers are built only where they may be shown: its own, or --help and
    # a mistyped command (usage lists every command).
    every = command not in {*sub.choices, *_REGISTERED_ELSEWHERE, "history", "explain"}

    # explain reaches the CRM (aiohttp): 0.13 s to import, which `check` must not pay.
    p = sub.add_parser("explain", help="what would happen to a call, and why (CRM, schedule, absence, profile, default)")
    if every or command == "explain":
        importlib.import_module(".explain_command", __package__).add_explain_arguments(p)
    p.set_defaults(func=_later(".explain_command", "cmd_explain"))
    for name, (module, adds) in _REGISTERED_ELSEWHERE.items():
        if every or command == name:
            getattr(importlib.import_module(module, __package__), adds)(sub)

    p = sub.add_parser("history", help="the call history: who missed what (table, --format csv|json)")
    if every or command == "history":
        importlib.import_module(".history.report", __package__).add_arguments(p)
    p.set_defaults(func=_later(".history.report", "cmd_history"))

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
