"""pbx-app: run the call engines and the web page; check and explain a policy; manage web users; read the call history."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from pathlib import Path

import psycopg

from .agi import run_agi
from .history.report import add_arguments as add_history_arguments
from .history.report import cmd_history
from .notices.service import run_notifier
from .notices.settings import NoticeSettings
from .policy import PolicyError
from .policy.commands import add_check_arguments, cmd_check
from .policy.published import publish, publish_on_change
from .engine_process import run_engine
from .settings import Settings
from .routing.explain_command import add_explain_arguments, cmd_explain
from .site.cli import add_asterisk_commands
from .startup import configure_logging
from .supervisor import supervise
from .users.cli import add_user_commands
from .web.server import serve as serve_web


def _settings(args: argparse.Namespace, need_ari: bool = True) -> Settings:
    settings = Settings.from_env(need_ari=need_ari)
    if args.policy:
        settings = replace(settings, policy_path=Path(args.policy))
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(supervise(_settings(args), args.policy))
    except KeyboardInterrupt:
        return 0


def cmd_engine(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(run_engine(_settings(args)))
    except KeyboardInterrupt:
        return 0


def cmd_web(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(serve_web(_settings(args, need_ari=False)))
    except KeyboardInterrupt:
        return 0


def cmd_agi(args: argparse.Namespace) -> int:
    settings = _settings(args, need_ari=False)  # FastAGI needs no ARI password
    if args.bind:
        settings = replace(settings, agi_bind=args.bind)
    try:
        return asyncio.run(run_agi(settings))
    except KeyboardInterrupt:
        return 0


def cmd_notify(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(run_notifier(_settings(args, need_ari=False), NoticeSettings.from_env()))
    except KeyboardInterrupt:
        return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """The policy file, checked, to the store PBX_POLICY_URL names (engines on several hosts)."""
    settings = _settings(args, need_ari=False)
    if not settings.policy_url:
        print("error: set PBX_POLICY_URL=postgresql://... (where the engines read the policy)", file=sys.stderr)
        return 2
    try:
        if args.watch:
            asyncio.run(publish_on_change(settings.policy_url, settings.policy_path, settings.announcements_dir))
            return 0
        version = publish(settings.policy_url, settings.policy_path, settings.announcements_dir)
    except PolicyError as exc:
        print(f"error: not published, the policy has errors:\n{exc}", file=sys.stderr)
        return 1
    except (psycopg.Error, OSError) as exc:
        print(f"error: cannot publish: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    print(f"{settings.policy_path}: published as version {version}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pbx-app", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run everything on this host: PBX_ENGINES call engines and the web page, as processes")
    p.add_argument("--policy", help="policy file (default: $PBX_POLICY or config/policy.yaml)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("engine", help="run one call engine (ARI app pbx_app-$PBX_ENGINE_NAME; settings from PBX_*)")
    p.add_argument("--policy", help="policy file (default: $PBX_POLICY or config/policy.yaml)")
    p.set_defaults(func=cmd_engine)

    p = sub.add_parser("web", help="serve the self-service page in its own process (PBX_WEB_BIND; no ARI needed)")
    p.add_argument("--policy", help="policy file (default: $PBX_POLICY or config/policy.yaml)")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("agi", help="run the FastAGI server for dialplan/pbx_agi.conf (docs/fastagi.md)")
    p.add_argument("--policy", help="policy file (default: $PBX_POLICY or config/policy.yaml)")
    p.add_argument("--bind", help="HOST:PORT to listen on (default: $PBX_AGI_BIND or 127.0.0.1:4573)")
    p.set_defaults(func=cmd_agi)

    p = sub.add_parser("notify", help="send missed-call and voicemail notices: e-mail (PBX_SMTP_*) and webhook (PBX_NOTICE_WEBHOOK_URL)")
    p.add_argument("--policy", help="policy file (default: $PBX_POLICY or config/policy.yaml)")
    p.set_defaults(func=cmd_notify)

    p = sub.add_parser("publish", help="check the policy file and publish it to PBX_POLICY_URL for every engine (docs/cluster.md)")
    p.add_argument("--policy", help="policy file (default: $PBX_POLICY or config/policy.yaml)")
    p.add_argument("--watch", action="store_true", help="keep running: publish the file again whenever it changes")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("check", help="validate a policy file; non-zero exit on errors")
    p.add_argument("file", nargs="?", default="config/policy.yaml")
    add_check_arguments(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("explain", help="what would happen to a call, and why (CRM, schedule, absence, profile, default)")
    add_explain_arguments(p)
    p.set_defaults(func=cmd_explain)

    add_user_commands(sub)
    add_asterisk_commands(sub)

    p = sub.add_parser("history", help="the call history: who missed what (table, --format csv|json)")
    add_history_arguments(p)
    p.set_defaults(func=cmd_history)

    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
