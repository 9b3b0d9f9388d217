"""The commands that run the app's processes (run, engine, web, agi, notify) and publish a
policy: cli.py imports this module only when one of them runs (see cli._later)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from pathlib import Path

import psycopg

from .agi import run_agi
from .notices.service import run_notifier
from .notices.settings import NoticeSettings
from .policy import PolicyError
from .policy.published import publish, publish_on_change
from .engine_process import run_engine
from .settings import Settings
from .supervisor import supervise
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
