"""Serves callback requests: when an employee with a waiting request is free (at work by their
schedule, and no channel on their phone), claim the oldest request, ring the employee, and once
they answer let the dialplan (pbx-callback) say "a client called you, press 1": pressing 1
dials the client through the route with the employee's number as caller ID, bridged by Dial().

How the PBX is asked — whether a phone is in use, a word when it goes idle, the call to the
employee and what happens on it — is a Phones (phones.py): ARI in the engines (ari_phones.py),
AMI beside FastAGI (pbx_app/ami). The service looks every ``interval`` seconds and at once when
a watched phone goes idle (events can be missed, the periodic look cannot). One coroutine per
callback; the request's lease is renewed while it runs. What happened is written to the journal
as legs of the call that asked, so history tells the request and the callback as one story; the
employee's channel carries the same CDR userfield (callid:leg:callback:employee)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from .. import contract as dp
from ..db.errors import StoreError
from ..history.events import CallEnded, Journal, LegEnded, LegOutcome, LegStarted
from ..outbound.guard import LIMITS, OutboundGuard, Verdict
from ..outbound.limits import WINDOW
from ..policy import Policy
from ..routing.availability import availability
from .ari_phones import AriPhones
from .phones import PhoneError, PhoneEvent, Phones
from .requests import CallbackRequest, CallbackStore
from ..waiting import set_within

log = logging.getLogger(__name__)

EMPLOYEE_ANSWERS = 5  # s beyond the ring time for the answered channel to reach us
PROMPT_TIME = 20  # s the employee may take over the prompt (two readings, 5 s each to press 1)
BRIDGE_POLL = 1.0  # s between looks for Dial()'s bridge while the client's phone rings
ALIVE_POLL = 10.0  # s between looks at a quiet channel during the talk: its end may have been missed
MAX_WATCHED = 1000  # phones whose device state we subscribe to

# Hangup causes of a ring that was never answered.
_NOT_ANSWERED: dict[int, LegOutcome] = {17: "employee_busy", 18: "employee_no_answer", 19: "employee_no_answer",
                                        21: "employee_busy"}
_CLIENT: dict[str, LegOutcome] = {"NOANSWER": "client_no_answer", "BUSY": "client_busy", "CANCEL": "client_no_answer"}


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class _Attempt:
    request: CallbackRequest
    leg: int
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    answered_at: datetime | None = None  # the client answered


class CallbackService:
    def __init__(self, phones: Phones, store: CallbackStore, policy: Callable[[], Policy], journal: Journal,
                 clock: Callable[[], datetime] = _utcnow, interval: float = 5.0, lease: float = 60.0,
                 ring_time: int = 30, guard: OutboundGuard | None = None):
        self.phones = phones
        self.app: str = phones.owner  # the leases' owner
        self.store = store
        self.policy = policy
        self.journal = journal
        self.clock = clock
        self.interval = interval
        self.lease = lease
        self.ring_time = ring_time  # s the employee's phone rings, and then the client's
        self.attempts: dict[str, _Attempt] = {}  # our channel to the employee → its attempt
        self.calling: set[str] = set()  # employees we are calling back now
        self.watched: set[str] = set()
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()
        self.served: dict[str, int] = {}  # attempts by outcome (for /metrics and tests)
        # Every number called back is vetted before the offer and before each Dial() (toll fraud).
        self.guard = guard or OutboundGuard(None, clock)

    # ---- events (the engine hands us ours first) --------------------------------------------------

    def take(self, event: dict) -> bool:
        """An ARI engine's event: True when it is ours (a watched phone's state, one of our channels)."""
        if not self.attempts and event.get("type") != "DeviceStateChanged":
            return False  # the common case, on every event of every call: no callback in progress
        return any([self.deliver(e) for e in AriPhones.translate(event)])

    def deliver(self, event: PhoneEvent) -> bool:
        """True when the event is ours: a phone's state (idle wakes the loop), or one of our calls."""
        if event.kind == "device":
            if event.value == "NOT_INUSE":
                self.wake.set()
            return True
        attempt = self.attempts.get(event.channel)
        if attempt is None:
            return False
        attempt.queue.put_nowait(event)
        return True

    async def vet(self, number: str, employee: str, call_id: str, reserve: bool = False) -> Verdict:
        """May ``number`` be offered a callback by ``employee`` (``reserve``: and count its call)?"""
        return await self.guard.check(self.policy(), number, employee, "callback", call_id, reserve=reserve)

    async def add(self, request: CallbackRequest) -> bool:
        """A flow of this engine stores a request: look at once (to watch the employee's phone).
        False: a request for the same number was waiting already; nothing added."""
        added = await self.store.add(request)
        self.wake.set()
        return added

    # ---- the loop -----------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            self.wake.clear()
            try:
                await self.tick()
            except StoreError as exc:
                log.warning("callbacks: the request store is not reachable (%s); trying again in %.0f s", exc, self.interval)
            except Exception:
                log.exception("callbacks: one round failed")
            await set_within(self.wake, self.interval)

    async def tick(self) -> None:
        """One look at the open requests: expire the old, start the due ones whose employee is free."""
        now = self.clock()
        policy = self.policy()
        seen = set(self.calling)
        for request in await self.store.open(now):
            if request.expires_at <= now:
                expired = await self.store.expire(request, now)
                if expired is not None:
                    await self._expired(expired, now)
                continue
            if request.employee in seen:
                continue  # oldest first: a younger request of theirs waits its turn
            seen.add(request.employee)
            await self._watch(request.endpoint)
            if request.next_try_at > now or not await self.free(policy, request, now):
                continue
            held = await self.store.claim(request, self.app, now, now + timedelta(seconds=self.lease))
            if held is None:
                continue  # another engine was first, or calls them back already
            if request.state == "calling":  # its holder died in the middle of an attempt
                await self.journal.record(LegEnded(request.id, request.leg, now, "failed",
                                                   cause=f"{request.lease_owner} went away while calling back"))
            self.calling.add(held.employee)
            task = asyncio.create_task(self._serve(held), name=f"callback-{held.id}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def free(self, policy: Policy, request: CallbackRequest, now: datetime) -> bool:
        """At work now (schedule, absences) and no channel on their phone."""
        employee = policy.employee(request.employee)
        if employee is not None and not availability(employee, now, policy.site.timezone).working:
            return False
        try:
            return not await self.phones.in_use(request.endpoint)
        except PhoneError as exc:
            log.warning("callback %s: cannot see %s (%s)", request.id, request.endpoint, exc)
            return False

    async def _watch(self, endpoint: str) -> None:
        """Ask for the phone's device state once: its going idle wakes the loop."""
        if endpoint in self.watched or len(self.watched) >= MAX_WATCHED:
            return
        self.watched.add(endpoint)
        await self.phones.watch(endpoint)

    # ---- one callback -------------------------------------------------------------------------------

    async def _serve(self, request: CallbackRequest) -> None:
        attempt = _Attempt(request, request.leg)
        channel_id = f"pbxcb-{uuid.uuid4().hex}"
        self.attempts[channel_id] = attempt
        renewing = asyncio.create_task(self._renew(request))
        try:
            await self.journal.record(LegStarted(request.id, attempt.leg, self.clock(), "callback", (request.employee,)))
            if not await self._may_dial(attempt):
                return
            outcome, cause = await self._call(attempt, channel_id)
            await self._settle(attempt, outcome, cause)
        except Exception:
            log.exception("callback %s: the attempt failed; the lease runs out and it is tried again", request.id)
        finally:
            renewing.cancel()
            self.attempts.pop(channel_id, None)
            self.calling.discard(request.employee)
            self.wake.set()  # their next request, or someone else's, may go now

    async def _may_dial(self, attempt: _Attempt) -> bool:
        """The guard once more before the Dial(): the policy may have changed since the request,
        and every attempt after the first is a call out of its own. The request's reservation
        (made when it was stored, if still within the hour) covers its first call."""
        r, now = attempt.request, self.clock()
        first = r.attempts == 0 and r.requested_at > now - WINDOW
        verdict = await self.guard.check(self.policy(), r.client, r.employee, "callback", r.id,
                                         reserve=not first, spare=1 if first else 0)
        if verdict.allowed:
            return True
        if verdict.reason in LIMITS:  # may pass later: the request waits its turn
            state, outcome, later = "waiting", "postponed", now + timedelta(seconds=r.retry_after)
        else:
            state, outcome, later = "refused", "refused", now
        await self.journal.record(LegEnded(r.id, attempt.leg, now, outcome, cause=verdict.why))  # type: ignore[arg-type]
        if not await self.store.finish(r.id, self.app, state, r.attempts, later):  # type: ignore[arg-type]
            log.error("callback %s: the lease was lost before the refusal could be stored", r.id)
        self.served[outcome] = self.served.get(outcome, 0) + 1
        log.info("callback %s: %s not dialled (%s); now %s", r.id, r.client, verdict.why, state)
        return False

    async def _renew(self, request: CallbackRequest) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                if not await self.store.renew(request.id, self.app, self.clock() + timedelta(seconds=self.lease)):
                    log.error("callback %s: lost the lease (another engine took it over)", request.id)
                    return
            except StoreError as exc:
                log.warning("callback %s: cannot renew the lease (%s)", request.id, exc)

    async def _call(self, attempt: _Attempt, channel_id: str) -> tuple[LegOutcome, str]:
        """Rings the employee; when they answer, the dialplan asks them for 1 and calls the client."""
        r = attempt.request
        variables = {dp.CB_LEG: f"{r.id}:{attempt.leg}:callback:{r.employee}", dp.CB_DIAL: r.dial,
                     dp.CB_RINGTIME: str(self.ring_time), dp.CB_CALLERID: self._caller_id(r)}
        try:
            await self.phones.ring(channel_id, r, f'"Callback {r.client}" <{r.client}>', self.ring_time, variables)
        except PhoneError as exc:
            return "employee_unreachable", str(exc)[:200]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ring_time + EMPLOYEE_ANSWERS
        while True:  # the employee's phone rings
            event = await self._next(attempt, deadline - loop.time())
            if event is None:
                await self.phones.hangup(channel_id)
                return "employee_no_answer", "no answer in time"
            if event.kind == "answered":
                break
            if event.kind in ("pressed", "client", "client_answered"):
                attempt.queue.put_nowait(event)  # the dialplan ran before word of the answer came: it was answered
                break
            if event.kind == "ended":
                cause = int(event.value or 0) if event.value.isdigit() else 0
                return _NOT_ANSWERED.get(cause, "employee_unreachable"), f"cause {cause}"
        try:
            await self.phones.answered(channel_id)
        except PhoneError as exc:
            await self.phones.hangup(channel_id)
            return "employee_declined", str(exc)[:200]
        pressed, client = None, ""
        deadline = loop.time() + PROMPT_TIME
        while True:  # the prompt, the client's ring, the talk: until the employee's channel ends
            if pressed is None:
                timeout: float = deadline - loop.time()
            elif pressed == "1" and attempt.answered_at is None:
                timeout = BRIDGE_POLL  # the client's answer may raise no event we are sent: look for Dial()'s bridge
            else:
                timeout = ALIVE_POLL
            event = await self._next(attempt, timeout)
            if event is None:
                if pressed == "1" and attempt.answered_at is None:
                    if await self.phones.bridged(channel_id):
                        await self._client_answered(attempt)
                    elif not await self.phones.alive(channel_id):
                        break  # its end was missed (the PBX link was down)
                    continue
                if pressed is not None and await self.phones.alive(channel_id):
                    continue
                await self.phones.hangup(channel_id)
                break
            if event.kind == "pressed":
                pressed = event.value
            elif event.kind == "client":
                client = event.value
            elif event.kind == "client_answered" and attempt.answered_at is None:
                await self._client_answered(attempt)
            elif event.kind == "ended":
                break
        if attempt.answered_at is not None:
            return "answered", "client answered"
        if pressed != "1":
            return "employee_declined", f"pressed {pressed or 'nothing'}"
        return _CLIENT.get(client, "client_unreachable"), client or "no dial status"

    async def _next(self, attempt: _Attempt, timeout: float | None) -> PhoneEvent | None:
        try:
            return await asyncio.wait_for(attempt.queue.get(), None if timeout is None else max(timeout, 0))
        except TimeoutError:
            return None

    async def _client_answered(self, attempt: _Attempt) -> None:
        """Written at once, not when they hang up: if we die during the talk, nobody calls again."""
        r = attempt.request
        attempt.answered_at = now = self.clock()
        if not await self.store.finish(r.id, self.app, "done", r.attempts + 1, now, answered_by=r.employee):
            log.error("callback %s: answered, but the lease was lost before it could be marked done", r.id)
        await self.journal.record(LegEnded(r.id, attempt.leg, now, "answered", answered_by=r.employee, answered_at=now,
                                           cause="client answered"))

    async def _settle(self, attempt: _Attempt, outcome: LegOutcome, cause: str) -> None:
        r, now = attempt.request, self.clock()
        self.served[outcome] = self.served.get(outcome, 0) + 1
        if outcome == "answered":
            await self.journal.record(LegEnded(r.id, attempt.leg, now, "answered", answered_by=r.employee,
                                               answered_at=attempt.answered_at))
            await self.journal.record(CallEnded(r.id, now, "answered", f"called back by {r.employee}"))
            log.info("callback %s: %s called %s back", r.id, r.employee, r.client)
            return
        later = now + timedelta(seconds=r.retry_after)
        attempts = r.attempts + (1 if outcome.startswith("client_") else 0)
        state = "client_no_answer" if attempts >= r.max_attempts else "waiting"
        if state != "waiting":
            cause = f"{cause}; attempt {attempts} of {r.max_attempts}, the last"
        elif outcome.startswith("client_"):
            cause = f"{cause}; attempt {attempts} of {r.max_attempts}"
        await self.journal.record(LegEnded(r.id, attempt.leg, now, outcome, cause=cause))
        if not await self.store.finish(r.id, self.app, state, attempts, later):  # type: ignore[arg-type]
            log.error("callback %s: the lease was lost before the outcome (%s) could be stored", r.id, outcome)
        log.info("callback %s: %s (%s); now %s", r.id, outcome, cause, state)

    async def _expired(self, request: CallbackRequest, now: datetime) -> None:
        await self.journal.record(LegStarted(request.id, request.leg, now, "callback", (request.employee,)))
        await self.journal.record(LegEnded(request.id, request.leg, now, "expired",
                                           cause=f"{request.attempts} call(s) to the client"))
        log.info("callback %s: expired (%s for %s)", request.id, request.client, request.employee)

    def _caller_id(self, request: CallbackRequest) -> str:
        employee = self.policy().employee(request.employee)
        name = employee.name if employee is not None else request.employee
        name = "".join(ch for ch in name if ch.isprintable() and ch not in '"<>\\,')[:60]
        return f'"{name}" <{request.employee}>'

    async def drain(self, timeout: float = 5.0) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=timeout)
