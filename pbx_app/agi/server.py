"""The FastAGI server: one short request per step of a call, each answered from what the
request itself carries (the channel's state arrives as AGI arguments), so any number of these
servers can serve one Asterisk and a restart loses no call.

Routes (agi://HOST:PORT/ROUTE, dialplan/pbx_agi.conf):
  call,EXTEN,CALLER                  a new call: CRM lookup, decision, journal; the first step
  next,STATE,PLAN,…report…           the step just done ended; the next step
  hangup,STATE,PLAN,…report…         the caller hung up during the step (h extension)

Only Asterisk gets that far (docs/security.md): a peer not on the allow-list is closed unread;
every request must prove the shared secret before anything happens (secret.py); PBX_STATE is
signed (state.py); a `call` for an id already journalled is refused (seen.py). Connections are
capped, and one request's headers too (protocol.py), so no peer can make us hold much."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Callable

from ..callback.offer import Requests
from ..crm import CrmProvider
from ..crm import lookup as crm_lookup
from ..history.events import Journal
from ..memory import give_back_now
from ..policy import Policy
from ..outbound.forwards import vet_plan
from ..routing.decide import CallContext, decide
from ..routing.plan import Offer
from ..story import CallStory, Cursor, Instruction
from ..story.codec import PlanTooLarge, decode_plan, encode_plan
from .. import contract as dp
from .steps import channel_variables, report_from_args
from .peers import AllowList, RefusalLog
from .protocol import MAX_LINE, AgiError, AgiRequest
from .secret import challenge, proves, state_key
from .seen import SeenCalls
from .state import ENDED, BadSignature, sign, verify

log = logging.getLogger(__name__)


MAX_CONNECTIONS = 512  # PBX_AGI_MAX_CONNECTIONS
# Asterisk sends a request's headers in one write and answers the secret's challenge at once: a
# connection still not through after this long may be closed to make room for a new one.
STALE_AFTER = 1.0
PROOF_TIMEOUT = 2.0
TRIM_AFTER = 100  # connections since the last hand-back of freed memory (after a flood)


class Refused(Exception):
    """The peer is not our Asterisk."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _host(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


class AgiServer:
    """``secret``: the shared secret (secret.py). Without one, any peer on the allow-list is
    believed and states are not signed: `pbx-app agi` never runs so (service.py)."""

    def __init__(
        self,
        policy: Callable[[], Policy],
        journal: Journal,
        crm: CrmProvider | None = None,
        clock: Callable[[], datetime] = _utcnow,
        *,
        callbacks: Requests | None = None,
        secret: bytes | None = None,
        allowed: AllowList | None = None,
        max_connections: int = MAX_CONNECTIONS,
        seen: SeenCalls | None = None,
    ):
        self.policy = policy  # asked once per new call: a reload never touches calls in flight
        self.journal = journal
        self.crm = crm
        self.clock = clock
        self.secret = secret
        self.key = state_key(secret) if secret is not None else None
        self.allowed = allowed or AllowList()
        self.max_connections = max_connections
        self.seen = seen or SeenCalls()
        self.refusals = RefusalLog()
        self.callbacks = callbacks  # where callback requests go (AMI serves them); None: no offers
        self.rng = random.Random()  # a random pick of the policy's; seeded once, not per call (~30 µs)
        self.requests = 0  # connections open now (for /health)
        self.proving: OrderedDict[asyncio.StreamWriter, float] = OrderedDict()  # not through yet, oldest first
        self.since_trim = 0
        self.trimming: asyncio.Task | None = None
        self.served = {"call": 0, "next": 0, "hangup": 0, "refused": 0}

    async def serve(self, host: str, port: int) -> asyncio.Server:
        if self.secret is None:
            log.warning("FastAGI without a shared secret: any peer on %s can make up calls", self.allowed)
        return await asyncio.start_server(self.handle, host, port, limit=MAX_LINE, backlog=1024)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _host(writer)
        if not self.allowed.allows(peer):
            self.refusals.note(peer, "not on PBX_AGI_ALLOWED_PEERS")
            writer.transport.abort()
            return
        if self.requests >= self.max_connections and not self._make_room():
            self.refusals.note(peer, f"{self.max_connections} connections already open (PBX_AGI_MAX_CONNECTIONS)")
            writer.transport.abort()
            return
        self.requests += 1
        self.since_trim += 1
        self.proving[writer] = asyncio.get_running_loop().time()
        try:
            try:
                request = await AgiRequest.accept(reader, writer)
                await self.authenticate(request)
            except (AgiError, TimeoutError, ConnectionError, Refused) as exc:
                self.served["refused"] += 1
                self.refusals.note(peer, str(exc) or "no complete request in time")
                writer.transport.abort()
                return
            finally:
                self.proving.pop(writer, None)
            await self.serve_request(request)
        finally:
            self.requests -= 1
            if self.requests == 0 and self.since_trim >= TRIM_AFTER:
                # A burst of connections leaves freed buffers in the heap: give them back now.
                self.since_trim = 0
                self.trimming = asyncio.create_task(give_back_now())

    def _make_room(self) -> bool:
        """Closes the oldest connection that has not proved itself for STALE_AFTER, if any."""
        if not self.proving:
            return False
        writer, since = next(iter(self.proving.items()))
        if asyncio.get_running_loop().time() - since < STALE_AFTER:
            return False
        del self.proving[writer]
        writer.transport.abort()
        return True

    async def authenticate(self, request: AgiRequest) -> None:
        """The peer proves it knows the secret without sending it (secret.py)."""
        if self.secret is None:
            return
        nonce, expression = challenge()
        async with asyncio.timeout(PROOF_TIMEOUT):
            result = await request.command(f"GET FULL VARIABLE {expression}")
        if not proves(self.secret, nonce, result.data if result.result == "1" else None):
            raise Refused("no proof of the shared secret (is pbx_agi_secret.conf in Asterisk's [globals] the "
                          "same as PBX_AGI_SECRET_FILE?)")

    async def serve_request(self, request: AgiRequest) -> None:
        try:
            await self.route(request)
        except (AgiError, TimeoutError, ConnectionError) as exc:
            # The dialplan sees no PBX_DO and takes its own way out (busy, or the fallback ring).
            log.error("FastAGI %s for %s: %s", request.script, request.headers.get("agi_uniqueid"), exc or "timeout")
        except Exception:  # a bug: this request gets no answer, the dialplan still ends the call
            log.exception("FastAGI %s for %s failed", request.script, request.headers.get("agi_uniqueid"))
        finally:
            await request.close()

    async def route(self, request: AgiRequest) -> None:
        script = request.script
        if script == "call":
            self.served["call"] += 1
            return await self.new_call(request)
        if script in ("next", "hangup"):
            self.served[script] += 1
            return await self.step(request, script)
        self.served["refused"] += 1
        log.error("FastAGI: no route %r (agi_network_script)", script)

    async def new_call(self, request: AgiRequest) -> None:
        args = request.args
        extension = args[0] if args else request.headers.get("agi_extension", "")
        caller = args[1] if len(args) > 1 else ""
        call_id = request.headers.get("agi_uniqueid", "")
        if not call_id or await self.seen.seen(call_id):
            # Asterisk never reuses a uniqueid: a second `call` for one would overwrite a real
            # call's history. No answer: the dialplan's own fallback serves the caller.
            self.served["refused"] += 1
            log.error("FastAGI: call %r to %s from %s refused: that call id is already in the journal",
                      call_id, extension, request.headers.get("agi_channel", "?"))
            return
        policy = self.policy()
        now = self.clock()
        crm = await crm_lookup(self.crm, policy, caller)  # bounded by the CRM deadline, never raises
        context = CallContext(extension=extension, caller=caller, at=now, crm=crm.rule, crm_note=crm.note)
        plan = await vet_plan(decide(policy, context, self.rng), getattr(self.callbacks, "guard", None), policy, call_id)
        flow = CallStory(plan, call_id, self.journal, self.clock, callbacks=self.callbacks, caller=caller)
        try:
            plan_vars = encode_plan(plan)
        except PlanTooLarge as exc:
            log.error("call %s to %s: %s; the caller gets busy", call_id, extension, exc)
            plan_vars = {}
        instruction = await flow.start(call_id, request.headers.get("agi_channel", ""), refuse=not plan_vars)
        for name, value in plan_vars.items():
            await request.set_variable(name, value)
        await self.answer(request, flow, instruction, "".join(plan_vars.values()))

    async def step(self, request: AgiRequest, route: str) -> None:
        args = request.args
        state, packed = (args + ["", ""])[:2]
        call_id = request.headers.get("agi_uniqueid", "")
        if not state or state == ENDED:
            return  # nothing of ours is in progress on this channel
        try:
            cursor = verify(self.key, call_id, state, packed) if self.key is not None else state
        except BadSignature as exc:
            self.served["refused"] += 1
            log.error("call %s: %s %s refused: %s", call_id, route, state[:40], exc)
            return await self.answer(request, None, Instruction("busy"), packed) if route == "next" else None
        try:
            flow = CallStory(decode_plan(packed), call_id, self.journal, self.clock, Cursor.decode(cursor),
                             callbacks=self.callbacks, caller=request.headers.get("agi_callerid", ""))
        except Exception as exc:
            log.error("call %s: its state on the channel is not readable (%s); busy", call_id, exc)
            return await self.answer(request, None, Instruction("busy"), packed)
        report = report_from_args(args[2:])
        if isinstance(flow.pending(), Offer):  # the key pressed is on the channel, not among the arguments
            report = dataclasses.replace(report, digit=await request.get_variable(dp.DIGIT) or "")
        if route == "hangup":
            return await flow.hangup(report)
        try:
            instruction = await flow.next(report)
        except Exception:
            log.exception("call %s: the step after %s failed; the caller gets busy", call_id, cursor)
            instruction = await flow.fail()
        await self.answer(request, flow, instruction, packed)

    def signed(self, call_id: str, flow: CallStory | None, plan: str) -> str:
        state = flow.state if flow is not None else ENDED
        if state == ENDED or self.key is None:
            return state
        return sign(self.key, call_id, state, plan)

    async def answer(self, request: AgiRequest, flow: CallStory | None, instruction: Instruction, plan: str) -> None:
        if instruction.cdr_off:
            await request.set_variable(dp.CDR_OFF, "1")
        state = self.signed(request.headers.get("agi_uniqueid", ""), flow, plan)
        variables = channel_variables(instruction, state)
        # One command for all of them where the values allow it (ARRAY splits on commas).
        # Otherwise one by one with PBX_DO last: a request cut short must not leave a step
        # whose variables were never set.
        names, values = list(variables), list(variables.values())
        if all("," not in v and '"' not in v for v in values):
            await request.set_variable(f"ARRAY({','.join(names)})", ",".join(values))
            return
        for name in sorted(names, key=lambda n: n == dp.DO):
            await request.set_variable(name, variables[name])
