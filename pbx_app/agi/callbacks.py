"""FastAGI mode's callbacks: the request store in the journal's database, served by the same
CallbackService as the engines', whose phones are reached over AMI (pbx_app/ami). Without
PBX_AMI_URL there are none: offers are skipped and /health says so."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Callable

from ..ami import AmiClient, AmiPhones
from ..callback import CallbackRequest, open_callbacks
from ..callback.service import CallbackService
from ..history.events import Journal
from ..policy import Policy
from ..settings import Settings

log = logging.getLogger(__name__)


class AgiCallbacks:
    def __init__(self, settings: Settings, policy: Callable[[], Policy], journal: Journal, owner: str | None = None,
                 ring_time: int = 30):
        self.store = open_callbacks(settings.database_url)
        # The lease owner: unique per process, so two servers (or a restarted one) never share a lease.
        self.owner = owner or f"agi-{socket.gethostname()}-{os.getpid()}"
        self.ami = AmiClient(settings.ami_url, settings.ami_user, settings.ami_secret,
                             on_event=self._event, on_up=self._up)
        self.phones = AmiPhones(self.ami, self.owner)
        self.service = CallbackService(self.phones, self.store, policy, journal, interval=settings.callback_interval,
                                       ring_time=ring_time)
        self.tasks: list[asyncio.Task] = []

    async def add(self, request: CallbackRequest) -> None:
        await self.service.add(request)

    def _event(self, message) -> None:
        for event in self.phones.translate(message):
            self.service.deliver(event)

    def _up(self) -> None:
        self.service.wake.set()  # phones may have gone idle while we were away: look now

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self.ami.run(), name="ami"),
                      asyncio.create_task(self.service.run(), name="callbacks")]
        log.info("callbacks on: phones through %s, requests in the journal's database", self.ami.where)

    def health(self) -> dict:
        return {"callback": "on" if self.ami.up else f"waiting for AMI ({self.ami.state})", "ami": self.ami.state}

    async def stop(self) -> None:
        await self.service.drain()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.ami.close()
        await self.store.close()
