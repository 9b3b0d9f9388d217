"""Wires the running app together: settings → ARI client → Stasis app, with the policy loaded
once at start (the last good policy stays in force if a later load fails)."""

from __future__ import annotations

import asyncio
import logging
import signal

from .ari import AriClient
from .calls.app import StasisApp
from .policy import Policy, PolicyError, load_policy
from .settings import Settings

log = logging.getLogger(__name__)


class PolicyHolder:
    """The policy in force. ``reload`` keeps the last good one when the file is broken."""

    def __init__(self, path):
        self.path = path
        self.current: Policy = load_policy(path)

    def __call__(self) -> Policy:
        return self.current

    def reload(self) -> bool:
        try:
            self.current = load_policy(self.path)
        except PolicyError as exc:
            log.error("policy reload refused, the last good policy stays in force:\n%s", exc)
            return False
        log.info("policy reloaded from %s", self.path)
        return True


async def run_app(settings: Settings) -> int:
    try:
        policy = PolicyHolder(settings.policy_path)
    except PolicyError as exc:
        log.error("cannot start, the policy is not valid:\n%s", exc)
        return 2
    ari = AriClient(settings.ari_url, settings.ari_user, settings.ari_password, settings.app)
    app = StasisApp(ari, policy)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, policy.reload)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("pbx_app: ARI %s as %s, app %s, policy %s", settings.ari_url, settings.ari_user, settings.app, settings.policy_path)
    runner = asyncio.create_task(app.run())
    await stop.wait()
    runner.cancel()
    await app.drain()
    await ari.close()
    return 0
