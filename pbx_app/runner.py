"""One call engine, wired together: settings → policy (hot reload), journal, ARI client → the
engine, the sweep for abandoned callers, the reconciler, and the engine's own /health and
/metrics. The self-service page is another process (pbx-app web): nothing a browser does waits
on this event loop."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from . import observability
from .ari import AriClient
from .calls.contract import app_name
from .calls.engine import CallEngine
from .calls.recovery import Sweeper
from .crm import CrmDirectory
from .history.cdr import open_cdr
from .history.events import CallStarted
from .history.journal import open_journal
from .history.reconcile import Reconciler
from .history.spool import SpoolBusy
from .policy import PolicyError
from .policy.store import PolicyStore
from .settings import Settings
from .signals import handle_signals
from .web.edge import allowed_hosts_middleware

log = logging.getLogger(__name__)


async def run_engine(settings: Settings) -> int:
    try:
        policy = PolicyStore(settings.policy_path)
    except PolicyError as exc:
        log.error("cannot start, the policy is not valid:\n%s", exc)
        return 2
    app = app_name(settings.engine_name)
    ari = AriClient(settings.ari_url, settings.ari_user, settings.ari_password, app)
    try:
        journal = await open_journal(settings.database_url, settings.spool_dir, wait_for=(CallStarted,))
    except (SpoolBusy, OSError) as exc:
        log.error("cannot start, the call journal's spool PBX_SPOOL_DIR=%s is not usable: %s", settings.spool_dir, exc)
        return 2
    metrics = observability.Metrics()
    crm = CrmDirectory()  # the policy's static CRM mapping, then its webhook (with deadline)
    observed = metrics.observing(journal)
    engine = CallEngine(ari, policy, journal=observed, crm=crm, max_calls=settings.max_calls)
    engine.events.give_up_after = settings.ari_give_up_after
    reconciler = Reconciler(journal.store, observed, cdr=open_cdr(settings.cdr_url) if settings.cdr_url else None,
                            grace=settings.reconcile_grace, busy=lambda call_id: call_id in engine.calls)
    sweeper = Sweeper(engine, settings.sweep_interval, on_listing=reconciler.reconcile)
    # Only the Host names the site allows: a DNS-rebinding page must not read /health or /metrics.
    webapp = web.Application(middlewares=[allowed_hosts_middleware(settings.web_allowed_hosts)])
    observability.setup(webapp, engine, policy, metrics)
    try:
        web_runner = await observability.serve(webapp, settings.engine_bind)
    except OSError as exc:
        log.error("cannot serve /health and /metrics on PBX_ENGINE_BIND=%s: %s", settings.engine_bind, exc.strerror or exc)
        await journal.close()
        return 2
    stop = handle_signals(policy)
    log.info("engine %s: ARI %s as %s, policy %s", app, settings.ari_url, settings.ari_user, settings.policy_path)
    runner = asyncio.create_task(engine.run())
    helpers = [asyncio.create_task(sweeper.run()), asyncio.create_task(policy.watch())]
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({runner, stopping}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if runner.done():
        log.error("stopping: %s", runner.exception())  # gave up on ARI (PBX_ARI_GIVE_UP_AFTER)
        code = 3
    for task in (runner, stopping, *helpers):
        task.cancel()
    await engine.drain()
    await crm.close()
    await journal.close()
    await web_runner.cleanup()
    await ari.close()
    return code
