"""`pbx-app agi`: the FastAGI server as a process — policy store with hot reload, CRM, the call
journal, and its own /metrics and /health on PBX_ENGINE_BIND (the page is `pbx-app web`)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .. import observability
from ..calls.app_down import AppDownFiles
from ..crm import CrmDirectory
from ..history.events import CallEnded, CallStarted, Journal, JournalEvent
from ..history.journal import open_journal
from ..history.spool import SpoolBusy
from ..policy.store import PolicyStore
from ..settings import Settings
from ..startup import CANNOT_START, load_policy, stop_on_signals
from .peers import AllowList
from .secret import SecretError, read_secret
from .seen import SeenCalls
from .callbacks import AgiCallbacks
from .server import AgiServer

log = logging.getLogger(__name__)


class CallCount:
    """Calls started and ended through this server (another server may end a call this one
    started, so "in progress" is this process's view)."""

    def __init__(self, inner: Journal):
        self.inner = inner
        self.started = 0
        self.ended = 0

    @property
    def in_progress(self) -> int:
        return max(0, self.started - self.ended)

    async def record(self, event: JournalEvent) -> None:
        if isinstance(event, CallStarted):
            self.started += 1
        elif isinstance(event, CallEnded):
            self.ended += 1
        await self.inner.record(event)


class AgiState:
    """/metrics at scrape time."""

    def __init__(self, server: AgiServer, calls: CallCount, policy: PolicyStore):
        self.server, self.calls, self.policy = server, calls, policy

    def collect(self):
        yield GaugeMetricFamily("pbx_calls_in_progress", "Calls this FastAGI server started and has not seen end",
                                value=self.calls.in_progress)
        served = CounterMetricFamily("pbx_agi_requests", "FastAGI requests served, by route", labels=["route"])
        for route, count in self.server.served.items():
            served.add_metric([route], count)
        yield served
        yield CounterMetricFamily("pbx_agi_refused_connections",
                                  "FastAGI connections closed unserved: peer not allowed, over the cap, no proof of the secret",
                                  value=self.server.refusals.refused)
        reloads = CounterMetricFamily("pbx_policy_reloads", "Policy reloads, by result", labels=["result"])
        for result, count in self.policy.reloads.items():
            reloads.add_metric([result], count)
        yield reloads


def add_health(webapp: web.Application, server: AgiServer, calls: CallCount, policy: PolicyStore, bind: str,
               callbacks: AgiCallbacks | None = None) -> None:
    async def health(request: web.Request) -> web.Response:
        current = policy()
        return web.json_response({
            "status": "ok", "agi": bind, "policy_loaded": current is not None, "policy": getattr(current, "source", None),
            "calls_in_progress": calls.in_progress, "requests_in_progress": server.requests,
            **(callbacks.health() if callbacks is not None else {"callback": "off (no PBX_AMI_URL)"}),
        })

    webapp.router.add_get("/health", health)


async def run_agi(settings: Settings) -> int:
    try:
        secret = read_secret(settings.agi_secret_file)
        allowed = AllowList(settings.agi_allowed_peers)
    except (SecretError, ValueError) as exc:
        log.error("cannot start: %s (PBX_AGI_SECRET_FILE, PBX_AGI_ALLOWED_PEERS; docs/security.md)", exc)
        return 2
    policy = load_policy(settings)  # PBX_POLICY_URL: the published policy, as the engines follow it
    if policy is None:
        return CANNOT_START
    try:
        journal = await open_journal(settings.database_url, settings.spool_dir)
    except (SpoolBusy, OSError) as exc:
        log.error("cannot start, the call journal's spool PBX_SPOOL_DIR=%s is not usable: %s", settings.spool_dir, exc)
        return 2
    metrics = observability.Metrics()
    calls = CallCount(metrics.observing(journal))
    crm = CrmDirectory()
    callbacks = (AgiCallbacks(settings, policy, calls, refused=lambda reason: metrics.outbound_refused.labels(reason).inc())
                 if settings.ami_url else None)
    server = AgiServer(policy, calls, crm=crm, secret=secret, allowed=allowed, callbacks=callbacks,
                       max_connections=settings.agi_max_connections, seen=SeenCalls(journal.store.call))
    host, _, port = settings.agi_bind.rpartition(":")
    try:
        listening = await server.serve(host or "127.0.0.1", int(port))
        webapp = web.Application()
        metrics.registry.register(AgiState(server, calls, policy))
        webapp.router.add_get("/metrics", observability.metrics_handler(metrics))
        add_health(webapp, server, calls, policy, settings.agi_bind, callbacks)
        web_runner = await observability.serve(webapp, settings.engine_bind)
    except OSError as exc:
        log.error("cannot listen (PBX_AGI_BIND=%s, PBX_ENGINE_BIND=%s): %s", settings.agi_bind, settings.engine_bind,
                  exc.strerror or exc)
        await crm.close()
        if callbacks is not None:
            await callbacks.stop()
        await journal.close()
        return 2
    stop = stop_on_signals(policy)
    log.info("pbx_app FastAGI on agi://%s/ (routes call, next, hangup), policy %s; peers allowed: %s, at most %d "
             "connections", settings.agi_bind, settings.policy_path, allowed, settings.agi_max_connections)
    watcher = asyncio.create_task(policy.watch())
    if callbacks is not None:
        callbacks.start()
    # With the server down, the dialplan follows each employee's plan from these files.
    fallbacks = asyncio.create_task(AppDownFiles(settings.fallback_dir, policy).run())
    await stop.wait()
    watcher.cancel()
    fallbacks.cancel()
    listening.close()
    await listening.wait_closed()  # the requests in progress finish: each is one short step
    if callbacks is not None:
        await callbacks.stop()  # a callback in progress ends on the PBX; its lease runs out
    await crm.close()
    await journal.close()
    await web_runner.cleanup()
    return 0
