"""`pbx-app explain`: what would happen to a call — the policy, the CRM's answer, the schedule at
a given time — in words, without placing it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .crm import CrmAnswer, CrmDirectory, lookup, static_answer
from .outbound.guard import screen
from .policy.loader import analyse_file
from .policy.model import WEEKDAYS
from .routing.decide import CallContext, decide
from .routing.explain import explain
from .routing.plan import Offer


def add_explain_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("extension", help="the number the client dials")
    p.add_argument("--caller", required=True, help="the client's number (for the CRM rule)")
    p.add_argument("--at", default="now",
                   help="when: 'now' (default), 'HH:MM' today, 'mon 10:00' (the next Monday), "
                        "'2026-12-01 10:00' or ISO with an offset; without one, the site's time zone")
    p.add_argument("--policy", default="config/policy.yaml", help="policy file (default: config/policy.yaml)")
    p.add_argument("--offline", action="store_true", help="do not ask the CRM webhook (the static mapping still applies)")


def parse_when(text: str, zone: ZoneInfo, now: datetime | None = None) -> datetime:
    """An aware datetime for --at; naive times are in ``zone``."""
    now = (now or datetime.now(zone)).astimezone(zone)
    text = text.strip()
    if text.lower() == "now":
        return now
    m = re.fullmatch(r"(?:([a-zA-Z]{3})\s+)?(\d{1,2}):(\d{2})", text)
    if m:
        day, hour, minute = m.group(1), int(m.group(2)), int(m.group(3))
        when = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if day:
            if day.lower() not in WEEKDAYS:
                raise ValueError(f"'{day}' is not a day (mon … sun)")
            when += timedelta(days=(WEEKDAYS.index(day.lower()) - now.weekday()) % 7)
        return when.replace(tzinfo=None).replace(tzinfo=zone)  # wall-clock time on that day
    when = datetime.fromisoformat(text)
    return when.replace(tzinfo=zone) if when.tzinfo is None else when.astimezone(zone)


def cmd_explain(args: argparse.Namespace) -> int:
    analysis = analyse_file(args.policy)
    if analysis.errors:
        for problem in analysis.errors:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{args.policy}: not valid; fix it first (pbx-app check {args.policy})", file=sys.stderr)
        return 1
    policy = analysis.policy
    assert policy is not None
    zone = ZoneInfo(policy.site.timezone)
    try:
        at = parse_when(args.at, zone)
    except ValueError as exc:
        print(f"error: --at {args.at!r}: {exc}", file=sys.stderr)
        return 2

    async def ask_crm() -> CrmAnswer:
        if args.offline:
            return static_answer(policy, args.caller) or CrmAnswer(None, "CRM webhook not asked (--offline)" if policy.crm.webhook else None)
        directory = CrmDirectory()
        try:
            return await lookup(directory, policy, args.caller)
        finally:
            await directory.close()

    logging.getLogger("pbx_app.crm").setLevel(logging.ERROR)  # the reasons below say what the CRM did
    crm = asyncio.run(ask_crm())
    plan = decide(policy, CallContext(args.extension, args.caller, at, crm=crm.rule, crm_note=crm.note))
    print(explain(policy, plan, args.caller, at))
    if any(isinstance(step, Offer) for branch in (plan.on_no_answer, plan.on_busy, plan.on_unreachable) for step in branch):
        verdict = screen(policy.site.outbound, args.caller)  # the hourly limits are the running app's to count
        print(f"Callback offer to {args.caller or '(no number)'}: "
              + ("made while the hour's calls out are within site.outbound.per_hour." if verdict.allowed
                 else f"not made ({verdict.why}): the fallback runs at once."))
    return 0
