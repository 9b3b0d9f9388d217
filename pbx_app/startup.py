"""What every long-running process does on its way up (`pbx-app engine`, `agi`, `notify`): its
log lines' form, the policy it serves from (the file, or the published one where PBX_POLICY_URL
names a store: docs/cluster.md), how it answers the system's signals, and its /health and
/metrics port. A failure says what to fix and the process exits with 2."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from . import observability
from .policy import PolicyError
from .policy.published import PublishedPolicy
from .policy.store import PolicyStore
from .settings import Settings
from .signals import handle_signals

log = logging.getLogger(__name__)
CANNOT_START = 2  # the exit code of a process that could not start


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def load_policy(settings: Settings) -> PolicyStore | PublishedPolicy | None:
    """The policy holder, or None (logged) when the file does not validate. With PBX_POLICY_URL,
    the file is the start and the published policy follows it."""
    try:
        policy = PolicyStore(settings.policy_path)
    except PolicyError as exc:
        log.error("cannot start, the policy is not valid:\n%s", exc)
        return None
    return PublishedPolicy(settings.policy_url, policy) if settings.policy_url else policy


def stop_on_signals(policy: PolicyStore | PublishedPolicy) -> asyncio.Event:
    """SIGTERM and SIGINT set the event; SIGHUP re-reads the policy (signals.py)."""
    return handle_signals(policy)


async def serve_health(webapp: web.Application, settings: Settings) -> web.AppRunner | None:
    """/health and /metrics on PBX_ENGINE_BIND, or None (logged) when the port cannot be had."""
    try:
        return await observability.serve(webapp, settings.engine_bind)
    except OSError as exc:
        log.error("cannot serve /health and /metrics on PBX_ENGINE_BIND=%s: %s", settings.engine_bind, exc.strerror or exc)
        return None
