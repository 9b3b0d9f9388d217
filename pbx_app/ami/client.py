"""An AMI connection on panoramisk's Manager (its parser, actions and event dispatch), with what
it lacks for a service that must not stall or repeat a call (docs/fastagi.md, "AMI"):

- panoramisk reconnects for ever on a fixed 2 s timer, and logs a refused login as nothing at
  all; here the reconnecting is ours: backoff from 0.5 s up to 30 s, a refused login named in
  the log and in ``state`` (/health).
- On a cut, panoramisk keeps the actions in flight and sends them again after the next login
  (an Originate would ring the employee twice), and an action that got its first answer before
  the cut waits for ever. Here every action has a deadline and fails at once when the
  connection goes: the caller decides what to do again.
- Its keep-alive Ping never looks at the answer, so a peer that stops answering (a half-open
  connection, a stuck Asterisk) is never noticed; here a Ping without answer drops the link.
- A peer sending an endless message grows its buffer without limit; here it is cut at 1 MiB.
- Only the events used are asked for (Login's Events: call,user) and handed on; a handler's
  error is logged, not raised into the protocol (which would close the connection)."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable
from urllib.parse import urlsplit

from panoramisk import Manager
from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from ..backoff import Backoff
from ..waiting import set_within

log = logging.getLogger(__name__)

EVENTS = ("DeviceStateChange", "UserEvent", "DialEnd", "Hangup", "OriginateResponse")
EVENT_CLASSES = "call,user"  # what Login asks for: DeviceStateChange, DialEnd, Hangup, OriginateResponse; UserEvent
MAX_BUFFER = 1 << 20  # bytes of one unfinished AMI message


class AmiError(Exception):
    """No answer (not connected, cut, too slow)."""


class AmiRefused(AmiError):
    """Asterisk answered the action with an error (its message says why)."""


def parse_url(url: str) -> tuple[str, int]:
    """PBX_AMI_URL: tcp://host:port, or host:port (port 5038 when left out)."""
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    if parts.scheme != "tcp" or not parts.hostname:
        raise ValueError(f"PBX_AMI_URL={url!r}: use tcp://127.0.0.1:5038")
    return parts.hostname, parts.port or 5038


class _Protocol(AMIProtocol):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.queue and len(self.queue[0]) > MAX_BUFFER:
            log.error("AMI: a message over %d bytes without its end; dropping the connection", MAX_BUFFER)
            self.transport.abort()


class _Manager(Manager):
    """panoramisk's Manager with the reconnecting and the replay of actions taken away: its
    connection's end is reported to the AmiClient, which decides."""

    def __init__(self, on_lost: Callable[[object], None], **config):
        super().__init__(**config)
        self.on_lost = on_lost

    def connection_lost(self, exc):
        self._connected = False
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        self.awaiting_actions.clear()  # never sent again on the next connection
        self.on_lost(exc)


class AmiClient:
    """``on_event(message)`` gets the EVENTS as they come (keep it quick, it runs in the
    protocol); ``on_up()`` after each login (events were missed while down: look again)."""

    def __init__(self, url: str, user: str, secret: str, on_event: Callable[[Message], None] = lambda m: None,
                 on_up: Callable[[], None] = lambda: None, action_timeout: float = 5.0, ping_every: float = 10.0,
                 backoff: Backoff | None = None):
        self.host, self.port = parse_url(url)
        self.user, self.secret = user, secret
        self.on_event, self.on_up = on_event, on_up
        self.action_timeout = action_timeout
        self.ping_every = ping_every
        self.backoff = backoff or Backoff(0.5, 30.0)
        self.state = "connecting"  # up | down | login refused (for /health)
        self.manager: _Manager | None = None
        self.pending: dict[str, asyncio.Future] = {}  # ActionID → its answer
        self.lost = asyncio.Event()
        self.connections = 0  # logins so far (for tests and /metrics)

    @property
    def up(self) -> bool:
        return self.state == "up"

    @property
    def where(self) -> str:
        return f"AMI {self.user}@{self.host}:{self.port}"

    # ---- the connection ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Connected whenever Asterisk lets us be; returns only when cancelled."""
        try:
            while True:
                try:
                    await self._connect()
                except AmiRefused as exc:
                    self.state = "login refused"
                    log.error("%s: login refused (%s); check PBX_AMI_USER, the secret file and manager.conf",
                              self.where, exc)
                except (AmiError, OSError, TimeoutError) as exc:
                    if self.state != "down":
                        log.warning("%s: cannot connect (%s)", self.where, exc or "timeout")
                    self.state = "down"
                else:
                    self.backoff.reset()
                    await self._stay_up()
                self._drop()
                await asyncio.sleep(self.backoff.next())
        finally:
            self._drop()

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        self.lost = asyncio.Event()
        manager = _Manager(self._lost, host=self.host, port=self.port, username=self.user, secret=self.secret,
                           events=EVENT_CLASSES, ping_delay=10**9, loop=loop, log=log)
        for name in EVENTS:
            manager.register_event(name, self._dispatch)
        self.manager = manager
        connected = await asyncio.wait_for(loop.create_connection(_Protocol, self.host, self.port), self.action_timeout)
        made = loop.create_future()
        made.set_result(connected)
        manager.connection_made(made)  # sends Login
        login = manager.authenticated_future
        if login is None:
            raise AmiError("no Login was sent")
        try:
            answer = await asyncio.wait_for(asyncio.shield(login), self.action_timeout)
        except TimeoutError:
            raise AmiError(f"no answer to Login in {self.action_timeout:.0f} s") from None
        if not answer.success:
            raise AmiRefused(answer.get("Message") or "Authentication failed")
        self.state = "up"
        self.connections += 1
        log.info("%s: logged in", self.where)
        try:
            self.on_up()
        except Exception:
            log.exception("AMI: the on_up handler failed")

    async def _stay_up(self) -> None:
        """Until the link is lost, or a Ping goes without answer (then it is dropped)."""
        while True:
            if await set_within(self.lost, self.ping_every):
                log.warning("%s: connection lost; reconnecting", self.where)
                self.state = "down"
                return
            try:
                await self.action({"Action": "Ping"})
            except AmiError as exc:
                log.warning("%s: %s; dropping the connection", self.where, exc)
                self.state = "down"
                return

    def _lost(self, exc: object) -> None:
        self.state = "down" if self.state == "up" else self.state
        self.lost.set()
        for future in self.pending.values():
            if not future.done():
                future.set_exception(AmiError("the AMI connection was lost before the answer"))
        self.pending.clear()

    def _drop(self) -> None:
        manager, self.manager = self.manager, None
        if manager is not None:
            manager.close()  # panoramisk's close does not report the end: do it here
            self._lost(None)

    def _dispatch(self, manager: Manager, message: Message) -> None:
        try:
            self.on_event(message)
        except Exception:
            log.exception("AMI: the handler of %s failed", message.get("Event"))

    # ---- actions ----------------------------------------------------------------------------------

    async def action(self, fields: dict, timeout: float | None = None) -> Message:
        """Asterisk's first answer to the action; AmiRefused when it is an error, AmiError when
        there is none in time or the connection goes first. Never sent again on its own."""
        manager = self.manager
        if manager is None or not self.up and fields.get("Action") != "Ping":
            raise AmiError(f"{self.where} is {self.state}")
        sent = Action(dict(fields), as_list=False)  # its first answer completes it (an Async Originate too)
        action_id = sent.action_id
        future = manager.send_action(sent, as_list=False)
        self.pending[action_id] = future
        try:
            answer = await asyncio.wait_for(asyncio.shield(future), timeout or self.action_timeout)
        except TimeoutError:
            raise AmiError(f"no answer to {fields.get('Action')} in {timeout or self.action_timeout:.0f} s") from None
        finally:
            self.pending.pop(action_id, None)
            if manager.protocol is not None:
                manager.protocol.responses.pop(action_id, None)  # panoramisk keeps unanswered ones for ever
        if not answer.success:
            raise AmiRefused(answer.get("Message") or str(answer.get("Response")))
        return answer

    async def close(self) -> None:
        self._drop()
