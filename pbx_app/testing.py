"""A fake Asterisk that speaks just enough ARI, and plays just enough of dialplan/pbx_app.conf,
for unit tests of the call engines: whole calls in milliseconds, several engines, engines that
die. It never replaces the suite that calls the real Asterisk.

    fake = FakeAsterisk(phones={"PJSIP/101": "no_answer", "PJSIP/102": "answer"})
    engine = CallEngine(fake.client("pbx_app-1"), lambda: policy)
    fake.attach(engine)
    channel = fake.new_call("101")
    await fake.settle()
    assert fake.actions_for(channel)[-1] == ("hangup", "normal")
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from .ari import AriError
from .ari.client import AriVerbs
from . import contract as dp

# answer | no_answer | busy | unreachable | caller_leaves (the caller hangs up while it rings) |
# rings (no answer, but the ring lasts until the test sets ``fake.ring_ends``: time to kill an engine)
Behaviour = str
CLAIM_ROUNDS = 20  # loop turns a broadcast waits for a claim (StasisBroadcast's timeout)


@dataclass
class FakeChannel:
    id: str
    name: str
    caller: str
    language: str
    vars: dict[str, str] = field(default_factory=dict)
    actions: list[tuple] = field(default_factory=list)
    alive: bool = True
    on_hangup: Callable[[], None] | None = None  # what the dialplan's h extension does
    stasis_app: str | None = None  # the app the channel is in, None while in the dialplan
    owner: str | None = None  # the app that gets its events (it claimed it or it came back to it)
    claimed_by: str | None = None
    broadcast: bool = False


class FakeAri(AriVerbs):
    """One engine's view of the fake: ``app`` is its ARI application."""

    def __init__(self, fake: "FakeAsterisk", app: str):
        self.fake = fake
        self.app = app

    async def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        return await self.fake.handle(self.app, method, path, body, params)

    async def close(self) -> None:
        pass


class FakeAsterisk(FakeAri):
    """Answers the ARI requests the engines make and plays out each Dial() by the phones' scripts.

    ``phones`` maps a Dial() endpoint to how that phone behaves; ``talk_ends`` says who hangs up
    after an answer ("callee": the dialplan ends the call, "caller": the caller hangs up).
    ``voicemail`` maps a mailbox to whether the caller leaves a message there. Used directly as
    an ARI client it is the engine ``pbx_app-test``; ``client(name)`` gives other engines."""

    def __init__(
        self,
        phones: dict[str, Behaviour] | None = None,
        talk_ends: str = "callee",
        voicemail: dict[str, bool] | None = None,
    ):
        super().__init__(self, "pbx_app-test")
        self.phones = phones or {}
        self.talk_ends = talk_ends
        self.voicemail = voicemail or {}
        self.channels: dict[str, FakeChannel] = {}
        self.apps: dict[str, Callable[[dict], None]] = {}  # connected engines' dispatch
        self.requests: list[tuple[str, str, str]] = []  # (app, method, path) of every request
        self.elapsed = 0  # seconds of ringing the calls would have taken
        self.fallback_ringtime = 120
        self._ids = itertools.count(1)
        self._pending: set[asyncio.Task] = set()
        self.ring_ends = asyncio.Event()
        self.failing: dict[str, AriError] = {}  # path prefix → error to raise, for failure tests
        self.keys: dict[str, str] = {}  # caller channel (or "*": every caller) → the digit pressed at a callback offer
        self.offer_held: asyncio.Event | None = None  # set: callback offers last until it is (time to kill an engine)
        self.globals: dict[str, str] = {}
        self.stalled: set[str] = set()  # engines hung: their heartbeat has stopped

    # ---- test side ------------------------------------------------------------------------------

    def client(self, app: str) -> FakeAri:
        return FakeAri(self, app)

    def attach(self, engine: Any) -> None:
        """The engine's websocket connects. Its events reach it as Asterisk's do: JSON text,
        through the engine's own filter (``engine.events.skip``), then ``engine.dispatch``."""

        def deliver(event: dict) -> None:
            raw = json.dumps(event)
            if engine.events.skip is not None and engine.events.skip(raw):
                return
            engine.dispatch(json.loads(raw))

        self.apps[engine.ari.app] = deliver
        self.stalled.discard(engine.ari.app)

    def detach(self, app: str) -> None:
        """The engine dies: its websocket is gone, its callers stay where they are."""
        self.apps.pop(app, None)

    def stall(self, app: str) -> None:
        """The engine hangs: its websocket stays up, so Asterisk still puts its callers in its
        Stasis, but it acts on no event."""
        self.apps[app] = lambda event: None
        self.stalled.add(app)

    def new_call(self, extension: str, caller: str = "79001234567", language: str = "en") -> str:
        n = next(self._ids)
        ch = FakeChannel(id=f"fake.{n}", name=f"PJSIP/client-{language}-{n:08x}", caller=caller, language=language)
        self.channels[ch.id] = ch
        ch.actions.append(("ringing",))
        self._later(self._offer(ch, ["direct", extension], lambda: self._app_down(ch, extension)))
        return ch.id

    def caller_hangs_up(self, channel_id: str) -> None:
        ch = self.channels[channel_id]
        ch.actions.append(("caller_hangup",))
        self._gone(ch)

    def actions_for(self, channel_id: str) -> list[tuple]:
        return self.channels[channel_id].actions

    def requests_by(self, app: str) -> list[tuple[str, str]]:
        return [(m, p) for a, m, p in self.requests if a == app]

    async def settle(self, rounds: int = 1000) -> None:
        """Lets every simulated event and flow task run to quiet (a ring held by a "rings" phone
        stays held)."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    # ---- ARI side -------------------------------------------------------------------------------

    async def handle(self, app: str, method: str, path: str, body: Any, params: dict) -> Any:
        await asyncio.sleep(0)
        self.requests.append((app, method, path))
        for prefix, error in self.failing.items():
            if path.startswith(prefix):
                raise error
        parts = path.strip("/").split("/")
        if parts[0] == "applications":
            return None
        if parts == ["asterisk", "variable"]:  # a global: the engines' heartbeats
            self.globals[params["variable"]] = params.get("value", "")
            return None
        if parts[:2] == ["events", "claim"]:
            return self._claim(app, params["channelId"])
        if parts == ["channels"] and method == "GET":
            return [self._listed(ch) for ch in self.channels.values() if ch.alive]
        if parts[0] != "channels" or len(parts) < 2:
            raise AriError(404, f"fake: no route {method} {path}", method, path)
        ch = self.channels.get(parts[1])
        if ch is None or not ch.alive:
            raise AriError(404, "Channel not found", method, path)
        op = parts[2] if len(parts) > 2 else ""
        if method == "DELETE" and op == "":
            ch.actions.append(("hangup", params.get("reason", "normal")))
            self._gone(ch, by_app=True)
            return None
        if method == "GET" and op == "":
            return self._listed(ch)
        if op == "variables" and method == "GET":
            names = params["variables"].split(",")
            return {"variables": {n: ch.vars[n] for n in names if n in ch.vars}}
        if ch.stasis_app is None:
            raise AriError(409, "Channel not in Stasis application", method, path)
        if op == "variables":
            ch.vars.update(body["variables"])
            return None
        if op == "continue":
            ch.stasis_app = None
            self._emit(ch, {"type": "StasisEnd", "channel": self._json(ch)})
            self._later(self._dialplan(ch, params))
            return None
        raise AriError(404, f"fake: no route {method} {path}", method, path)

    # ---- the dialplan, played -----------------------------------------------------------------------

    async def _dialplan(self, ch: FakeChannel, where: dict) -> None:
        await asyncio.sleep(0)
        context, exten = where["context"], where["extension"]
        if context == dp.DIAL:
            if where.get("label") == dp.RECLAIM:
                return await self._back_from_ring(ch, ch.vars["DIALSTATUS"], broadcast_only=True)
            ring = dp.PackedRing.decode(ch.vars[dp.RING])
            await self._ring(ch, ring.dial, ring.ringtime, ch.vars.get(dp.ANNOUNCE, ""))
        elif context == dp.VOICEMAIL:
            await self._voicemail(ch, ch.vars[dp.MAILBOX], ch.vars.get(dp.ANNOUNCE, ""))
        elif context == dp.OFFER:
            await self._callback_offer(ch, where.get("label") == dp.RECLAIM)
        elif context == dp.END:
            await self._end(ch, exten)
        elif context == dp.DIRECT and where.get("label") == dp.APP_DOWN:
            await self._app_down(ch, exten)
        elif context == dp.DIRECT:
            await self._offer(ch, ["direct", exten], lambda: self._app_down(ch, exten))
        elif context == dp.FALLBACK_CONTEXT:
            await self._fallback(ch, exten)
        else:
            raise AssertionError(f"fake: no dialplan at {context},{exten}")

    async def _ring(self, ch: FakeChannel, dial: str, timeout: int, announce: str, fallback: bool = False) -> None:
        if announce:
            ch.actions.append(("play", announce))
            self._report(ch, dp.ANNOUNCED, "SUCCESS")
            await asyncio.sleep(0)
        if not ch.alive:
            return
        endpoints = dial.split("&")
        ch.actions.append(("dial", tuple(endpoints), timeout))
        behaviours = {ep: self.phones.get(ep, "no_answer") for ep in endpoints}
        peers = {ep: f"{ep}-{next(self._ids):08x}" for ep in endpoints}
        if "rings" in behaviours.values():
            await self.ring_ends.wait()
            if not ch.alive:
                return
        if "caller_leaves" in behaviours.values():
            return self.caller_hangs_up(ch.id)
        answering = [ep for ep in endpoints if behaviours[ep] == "answer"]
        if answering:
            winner = answering[0]
            ch.actions.append(("talk", winner))
            await asyncio.sleep(0)
            # Whoever hangs up, pbx-dial's h extension reports the answer before the channel goes.
            ch.on_hangup = lambda: self._report(ch, dp.ANSWERED, f"{peers[winner]}^1500")
            if self.talk_ends == "caller":
                self.caller_hangs_up(ch.id)
            else:
                self._dialplan_hangup(ch, "normal")
            return
        values = set(behaviours.values())
        if values == {"busy"}:
            status = "BUSY"
        elif values == {"unreachable"}:
            status = "CHANUNAVAIL"
        else:
            status = "NOANSWER"
            self.elapsed += timeout
        ch.vars["DIALSTATUS"] = status
        if fallback:
            return
        await self._back_from_ring(ch, status)

    async def _callback_offer(self, ch: FakeChannel, reclaim: bool = False) -> None:
        """pbx-offer: answer, Read() one digit, back to the owner (else any engine, else on)."""
        digit = self.keys.get(ch.id, self.keys.get("*", ""))
        if not reclaim:
            ch.actions.append(("answer",))
            ch.actions.append(("read", ch.vars.get(dp.ANNOUNCE, ""), int(ch.vars.get(dp.OFFER_TIMEOUT, "0"))))
            await asyncio.sleep(0)
            if self.offer_held is not None:
                await self.offer_held.wait()
            if not ch.alive:
                return
        args = ["offered", digit]
        owner = ch.vars.get(dp.ENGINE, "")
        if not reclaim and owner in self.apps:
            return self._enter(ch, owner, args)
        await self._offer(ch, args, lambda: self._fallback(ch, "NOANSWER"))

    async def _back_from_ring(self, ch: FakeChannel, status: str, broadcast_only: bool = False) -> None:
        owner = ch.vars.get(dp.ENGINE, "")
        args = ["dialed", status, "0"]
        # pbx-dial's carry: the owner's heartbeat is fresh while it is connected and not hung.
        if not broadcast_only and ch.vars.get(dp.CARRY) and owner in self.apps and owner not in self.stalled:
            self._report(ch, dp.DIALED, f"{status}^0")
            return await self._carry(ch, dp.fallback_for(dp.Entry.from_args(args))["extension"])
        if not broadcast_only and owner in self.apps:
            return self._enter(ch, owner, args)
        await self._offer(ch, args, lambda: self._fallback(ch, dp.fallback_for(dp.Entry.from_args(args))["extension"]))

    async def _offer(self, ch: FakeChannel, args: list[str], unclaimed: Callable) -> None:
        """StasisBroadcast: every connected engine is told; the first claim wins."""
        ch.broadcast, ch.claimed_by = True, None
        context = dp.DIRECT if args[0] == "direct" else dp.DIAL
        for dispatch in list(self.apps.values()):
            dispatch({"type": "CallBroadcast", "channel": {**self._json(ch), "dialplan": {"context": context}}})
        for _ in range(CLAIM_ROUNDS):
            await asyncio.sleep(0)
            if ch.claimed_by is not None:
                break
        ch.broadcast = False
        if ch.claimed_by is not None:
            return self._enter(ch, ch.claimed_by, args)
        await unclaimed()

    def _claim(self, app: str, channel_id: str) -> None:
        ch = self.channels.get(channel_id)
        if ch is None or not ch.broadcast or ch.claimed_by is not None:
            raise AriError(404, "Channel not found or not in broadcast state", "POST", "/events/claim")
        ch.claimed_by = app

    def _enter(self, ch: FakeChannel, app: str, args: list[str]) -> None:
        ch.stasis_app = ch.owner = app
        self._emit(ch, {"type": "StasisStart", "args": args, "channel": self._json(ch)})

    async def _fallback(self, ch: FakeChannel, outcome: str) -> None:
        fb = dp.Fallbacks.pick(ch.vars.get(dp.FALLBACKS, ""), outcome)
        ch.actions.append(("fallback", outcome))
        if fb.dial:
            await self._ring(ch, fb.dial, fb.ringtime, fb.announce, fallback=True)
            if not ch.alive:
                return
        if fb.then == "voicemail":
            return await self._voicemail(ch, fb.mailbox, "")
        await self._end(ch, fb.then)

    async def _carry(self, ch: FakeChannel, outcome: str) -> None:
        """pbx-carry: PBX_FB's part for the outcome, its next ring through pbx-dial."""
        fb = dp.Fallbacks.pick(ch.vars.get(dp.FALLBACKS, ""), outcome)
        ch.actions.append(("carry", outcome))
        ch.vars[dp.FALLBACKS] = dp.Fallback(then=fb.then, mailbox=fb.mailbox, then_leg=fb.then_leg,
                                            then_exten=fb.then_exten).encode()
        if fb.dial:
            ch.vars[dp.RING] = dp.PackedRing(fb.dial, fb.ringtime, fb.leg.removesuffix(":fallback")).encode()
            ch.vars.update({dp.ANNOUNCE: fb.announce, dp.WHISPER: fb.whisper, dp.CURSOR: fb.cursor})
            return await self._dialplan(ch, {"context": dp.DIAL, "extension": fb.exten})
        if fb.then == "voicemail":
            return await self._voicemail(ch, fb.mailbox, "")
        await self._end(ch, fb.then)

    async def _app_down(self, ch: FakeChannel, extension: str) -> None:
        ch.actions.append(("fallback", "app-down"))
        await self._ring(ch, f"PJSIP/{extension}", self.fallback_ringtime, "", fallback=True)
        if ch.alive:
            await self._end(ch, "busy")

    async def _end(self, ch: FakeChannel, how: str) -> None:
        if how == "callback":
            ch.actions.append(("play", "pbx_app/callback-confirm"))
            self._dialplan_hangup(ch, "normal")
        elif how == "message":
            ch.actions.append(("play", "pbx_app/manager-unavailable"))
            self._report(ch, dp.ANNOUNCED, "SUCCESS")
            await asyncio.sleep(0)
            self._dialplan_hangup(ch, "normal")
        else:
            self._dialplan_hangup(ch, "busy")

    async def _voicemail(self, ch: FakeChannel, box: str, announce: str) -> None:
        if announce:
            ch.actions.append(("play", announce))
            self._report(ch, dp.ANNOUNCED, "SUCCESS")
        ch.actions.append(("voicemail", box))
        self._report(ch, dp.VM_BEFORE, "0")
        if self.voicemail.get(box, False):
            # A caller ends a message by hanging up; the h extension counts the box again.
            ch.actions.append(("caller_hangup",))
            ch.alive = False
            self._emit(ch, {"type": "ChannelHangupRequest", "channel": self._json(ch)})
            self._report(ch, dp.VM_AFTER, "1")
            self._emit(ch, {"type": "ChannelDestroyed", "channel": self._json(ch), "cause": 16})
        else:
            self._report(ch, dp.VM_AFTER, "0")
            self._dialplan_hangup(ch, "normal")

    # ---- plumbing -----------------------------------------------------------------------------------

    def _json(self, ch: FakeChannel) -> dict:
        return {"id": ch.id, "name": ch.name, "caller": {"number": ch.caller}, "language": ch.language,
                "creationtime": "2026-11-29T08:40:01.000+0000"}

    def _listed(self, ch: FakeChannel) -> dict:
        if ch.stasis_app is not None:
            where = {"app_name": "Stasis", "app_data": ",".join([ch.stasis_app, "dialed"])}
        else:
            where = {"app_name": "Dial", "app_data": ""}
        return {**self._json(ch), "dialplan": {"context": dp.DIAL, "exten": "101", "priority": 5, **where}}

    def _emit(self, ch: FakeChannel, event: dict) -> None:
        dispatch = self.apps.get(ch.owner or "")
        if dispatch is not None:
            dispatch(event)

    def _report(self, ch: FakeChannel, name: str, value: str) -> None:
        """UserEvent(PBX,name:value), as Asterisk hands it to a subscribed app."""
        self._emit(ch, {"type": "ChannelUserevent", "eventname": dp.REPORT, "userevent": {"eventname": dp.REPORT, name: value},
                        "channel": self._json(ch)})

    def _later(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _dialplan_hangup(self, ch: FakeChannel, reason: str) -> None:
        ch.actions.append(("hangup", reason))
        self._gone(ch)

    def _gone(self, ch: FakeChannel, by_app: bool = False) -> None:
        if not ch.alive:
            return
        ch.alive = False
        if not by_app:
            self._emit(ch, {"type": "ChannelHangupRequest", "channel": self._json(ch)})
        if ch.on_hangup is not None:  # the h extension
            ch.on_hangup()
        self._emit(ch, {"type": "ChannelDestroyed", "channel": self._json(ch), "cause": 16})
