"""The FastAGI server: one short request per step of a call, each answered from what the
request itself carries (the channel's state arrives as AGI arguments), so any number of these
servers can serve one Asterisk and a restart loses no call.

Routes (agi://HOST:PORT/ROUTE, dialplan/pbx_agi.conf):
  call,EXTEN,CALLER                  a new call: CRM lookup, decision, journal; the first step
  next,STATE,PLAN,…report…           the step just done ended; the next step
  hangup,STATE,PLAN,…report…         the caller hung up during the step (h extension)"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from datetime import datetime, timezone
from typing import Callable

from ..crm import CrmProvider
from ..crm import lookup as crm_lookup
from ..history.events import Journal
from ..policy import Policy
from ..routing.decide import CallContext, decide
from ..routing.plan import Offer
from .flow import AgiFlow, Instruction, Report, Requests
from .protocol import AgiError, AgiRequest
from .state import ENDED, Cursor, PlanTooLarge, decode_plan, encode_plan

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class AgiServer:
    def __init__(
        self,
        policy: Callable[[], Policy],
        journal: Journal,
        crm: CrmProvider | None = None,
        clock: Callable[[], datetime] = _utcnow,
        callbacks: Requests | None = None,
    ):
        self.policy = policy  # asked once per new call: a reload never touches calls in flight
        self.journal = journal
        self.crm = crm
        self.clock = clock
        self.callbacks = callbacks  # where callback requests go (AMI serves them); None: no offers
        self.requests = 0  # in progress now (for /health)
        self.served = {"call": 0, "next": 0, "hangup": 0, "refused": 0}

    async def serve(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(self.handle, host, port, limit=64 * 1024)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        try:
            request = await AgiRequest.accept(reader, writer)
        except (AgiError, TimeoutError, ConnectionError) as exc:
            log.warning("FastAGI connection from %s dropped: %s", writer.get_extra_info("peername"), exc or "timeout")
            self.requests -= 1
            writer.close()
            return
        try:
            await self.route(request)
        except (AgiError, TimeoutError, ConnectionError) as exc:
            # The dialplan sees no PBX_DO and takes its own way out (busy, or the fallback ring).
            log.error("FastAGI %s for %s: %s", request.script, request.headers.get("agi_uniqueid"), exc or "timeout")
        except Exception:  # a bug: this request gets no answer, the dialplan still ends the call
            log.exception("FastAGI %s for %s failed", request.script, request.headers.get("agi_uniqueid"))
        finally:
            self.requests -= 1
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
        policy = self.policy()
        now = self.clock()
        crm = await crm_lookup(self.crm, policy, caller)  # bounded by the CRM deadline, never raises
        context = CallContext(extension=extension, caller=caller, at=now, crm=crm.rule, crm_note=crm.note)
        plan = decide(policy, context, random.Random())
        flow = AgiFlow(plan, call_id, self.journal, self.clock, callbacks=self.callbacks, caller=caller)
        try:
            plan_vars = encode_plan(plan)
        except PlanTooLarge as exc:
            log.error("call %s to %s: %s; the caller gets busy", call_id, extension, exc)
            plan_vars = {}
        instruction = await flow.start(caller, call_id, request.headers.get("agi_channel", ""), refuse=not plan_vars)
        for name, value in plan_vars.items():
            await request.set_variable(name, value)
        await self.answer(request, flow, instruction)

    async def step(self, request: AgiRequest, route: str) -> None:
        args = request.args
        state, packed = (args + ["", ""])[:2]
        call_id = request.headers.get("agi_uniqueid", "")
        if not state or state == ENDED:
            return  # nothing of ours is in progress on this channel
        try:
            flow = AgiFlow(decode_plan(packed), call_id, self.journal, self.clock, Cursor.decode(state),
                           callbacks=self.callbacks, caller=request.headers.get("agi_callerid", ""))
        except Exception as exc:
            log.error("call %s: its state on the channel is not readable (%s); busy", call_id, exc)
            return await self.answer(request, None, Instruction("busy"))
        report = Report.from_args(args[2:])
        if isinstance(flow.pending(), Offer):  # the key pressed is on the channel, not among the arguments
            report = dataclasses.replace(report, digit=await request.get_variable("PBX_DIGIT") or "")
        if route == "hangup":
            return await flow.hangup(report)
        try:
            instruction = await flow.next(report)
        except Exception:
            log.exception("call %s: the step after %s failed; the caller gets busy", call_id, state)
            instruction = await flow.fail()
        await self.answer(request, flow, instruction)

    async def answer(self, request: AgiRequest, flow: AgiFlow | None, instruction: Instruction) -> None:
        if instruction.cdr_off:
            await request.set_variable("CDR_PROP(disable)", "1")
        state = flow.state if flow is not None else ENDED
        variables = instruction.channel_variables(state)
        # One command for all of them where the values allow it (ARRAY splits on commas).
        # Otherwise one by one with PBX_DO last: a request cut short must not leave a step
        # whose variables were never set.
        names, values = list(variables), list(variables.values())
        if all("," not in v and '"' not in v for v in values):
            await request.set_variable(f"ARRAY({','.join(names)})", ",".join(values))
            return
        for name in sorted(names, key=lambda n: n == "PBX_DO"):
            await request.set_variable(name, variables[name])
