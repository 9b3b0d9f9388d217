"""One call engine, wired together: settings → policy (hot reload), journal, ARI client → the
engine, the sweep for abandoned callers, the reconciler, and the engine's own /health and
/metrics. With several Asterisk nodes (PBX_ARI_URL=url,url) there is one ARI client, engine and
sweep per node, one reconciler fed by every node's listing (pbx_app/nodes.py). The self-service
page is another process (pbx-app web): nothing a browser does waits on this event loop."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from . import observability
from .ari import AriClient
from .callback import open_callbacks
from .callback.ari_phones import AriPhones
from .callback.service import CallbackService
from .contract import app_name
from .calls.app_down import AppDownFiles
from .calls.engine import CallEngine
from .calls.recovery import Sweeper
from .crm import CrmDirectory
from .history.cdr import open_cdr
from .history.database import schema_problem
from .history.events import CallStarted
from .history.journal import open_journal
from .history.reconcile import Reconciler
from .history.retention import keep_history
from .history.unseen_calls import UnseenCalls, history_id
from .history.spool import SpoolBusy
from .memory import give_back_freed_memory
from .outbound.wiring import open_guard
from .nodes import EngineGroup, NodeListings
from .settings import Settings
from .startup import CANNOT_START, load_policy, serve_health, stop_on_signals
from .web.http.edge import allowed_hosts_middleware

log = logging.getLogger(__name__)


async def run_engine(settings: Settings) -> int:
    policy = load_policy(settings)
    if policy is None:
        return CANNOT_START
    app = app_name(settings.engine_name)
    aris = [AriClient(url, settings.ari_user, settings.ari_password, app, rest_over_websocket=settings.ari_rest == "websocket")
            for url in settings.ari_urls]
    problem = await schema_problem(settings.database_url)
    if problem:
        log.error("cannot start: %s", problem)
        return 2
    try:
        journal = await open_journal(settings.database_url, settings.spool_dir, wait_for=(CallStarted,))
    except (SpoolBusy, OSError) as exc:
        log.error("cannot start, the call journal's spool PBX_SPOOL_DIR=%s is not usable: %s", settings.spool_dir, exc)
        return 2
    metrics = observability.Metrics()
    crm = CrmDirectory()  # the policy's static CRM mapping, then its webhook (with deadline)
    observed = metrics.observing(journal)
    # Callback requests live in the journal's database; each node's engine serves them through its ARI.
    requests = open_callbacks(settings.database_url)
    # One toll-fraud guard for everything this engine dials out; its counts are in the same database.
    guard = open_guard(settings.database_url, policy, lambda reason: metrics.outbound_refused.labels(reason).inc())
    callbacks = [CallbackService(AriPhones(ari), requests, policy, observed, interval=settings.callback_interval, guard=guard)
                 for ari in aris]
    engines = [CallEngine(ari, policy, journal=observed, crm=crm, max_calls=settings.max_calls, callbacks=service,
                          disown_late=settings.stranded_after > 0)
               for ari, service in zip(aris, callbacks)]
    for engine in engines:
        engine.events.give_up_after = settings.ari_give_up_after
    group = EngineGroup(engines)
    cdr = open_cdr(settings.cdr_url)
    reconciler = Reconciler(journal.store, observed, cdr=cdr, grace=settings.reconcile_grace, busy=group.busy,
                            unseen=UnseenCalls(cdr, journal.store, history_id(settings.database_url)))
    # A listing older than a few sweeps means that node is down or unreachable: no call is ended
    # while some node could still have its channel — until it is taken as lost.
    listings = NodeListings(len(engines), reconciler.reconcile, max_age=3 * settings.sweep_interval + 5,
                            lost_after=settings.node_lost_after if len(engines) > 1 else None)
    sweepers = [Sweeper(engine, settings.sweep_interval, on_listing=listings.listener(i),
                        stranded_after=settings.stranded_after)
                for i, engine in enumerate(engines)]
    # Only the Host names the site allows: a DNS-rebinding page must not read /health or /metrics.
    webapp = web.Application(middlewares=[allowed_hosts_middleware(settings.web_allowed_hosts)])
    observability.setup(webapp, engines[0] if len(engines) == 1 else group, policy, metrics, journal)
    web_runner = await serve_health(webapp, settings)
    if web_runner is None:
        await journal.close()
        return CANNOT_START
    stop = stop_on_signals(policy)
    log.info("engine %s: ARI %s as %s, policy %s", app, ", ".join(settings.ari_urls), settings.ari_user,
             settings.policy_path)
    runners = [asyncio.create_task(engine.run()) for engine in engines]
    helpers = [asyncio.create_task(s.run()) for s in sweepers] + [asyncio.create_task(policy.watch())]
    helpers += [asyncio.create_task(c.run()) for c in callbacks]
    helpers.append(asyncio.create_task(give_back_freed_memory()))
    helpers.append(asyncio.create_task(AppDownFiles(settings.fallback_dir, policy, history=history_id(settings.database_url)).run()))
    if settings.history_keep_days > 0:
        helpers.append(asyncio.create_task(keep_history(journal.store, settings.history_keep_days)))
    stopping = asyncio.create_task(stop.wait())
    # One node given up on (PBX_ARI_GIVE_UP_AFTER) leaves the others served; all of them: exit.
    everyone_gone = asyncio.create_task(asyncio.wait(runners))
    await asyncio.wait({everyone_gone, stopping}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if everyone_gone.done():
        log.error("stopping: %s", runners[0].exception())  # gave up on ARI (PBX_ARI_GIVE_UP_AFTER)
        code = 3
    for task in (*runners, everyone_gone, stopping, *helpers):
        task.cancel()
    for engine in engines:
        await engine.drain()
    for service in callbacks:
        await service.drain()
    await requests.close()
    await guard.close()
    await crm.close()
    await journal.close()
    await web_runner.cleanup()
    for ari in aris:
        await ari.close()
    return code
