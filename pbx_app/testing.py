"""A fake Asterisk that speaks just enough ARI for the call flow: unit tests (ours and yours)
can run whole calls in milliseconds. It never replaces the suite that calls the real Asterisk.

    fake = FakeAsterisk(phones={"PJSIP/101": "no_answer", "PJSIP/102": "answer"})
    app = StasisApp(fake, lambda: policy)
    fake.attach(app)
    channel = fake.new_call("101")
    await fake.settle()
    assert fake.actions_for(channel)[-1] == ("hangup", "normal")
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable

from .ari import AriError
from .ari.client import AriVerbs

Behaviour = str  # answer | no_answer | busy | unreachable


@dataclass
class FakeChannel:
    id: str
    name: str
    caller: str
    language: str
    vars: dict[str, str] = field(default_factory=dict)
    actions: list[tuple] = field(default_factory=list)
    alive: bool = True
    in_stasis: bool = True


class FakeAsterisk(AriVerbs):
    """Answers the ARI requests the flow makes and plays out each Dial() by the phones' scripts.

    ``phones`` maps a Dial() endpoint to how that phone behaves; ``talk_ends`` says who hangs up
    after an answer ("callee" brings the caller back to Stasis with ANSWER, "caller" hangs up).
    ``voicemail`` maps a mailbox to whether the caller leaves a message there."""

    app = "pbx_app"

    def __init__(
        self,
        phones: dict[str, Behaviour] | None = None,
        talk_ends: str = "callee",
        voicemail: dict[str, bool] | None = None,
    ):
        self.phones = phones or {}
        self.talk_ends = talk_ends
        self.voicemail = voicemail or {}
        self.channels: dict[str, FakeChannel] = {}
        self.dispatch: Callable[[dict], None] | None = None
        self.elapsed = 0  # seconds of ringing the calls would have taken
        self._ids = itertools.count(1)
        self._pending: set[asyncio.Task] = set()
        self.failing: dict[str, AriError] = {}  # path prefix → error to raise, for failure tests

    # ---- test side ------------------------------------------------------------------------------

    def attach(self, app: Any) -> None:
        self.dispatch = app.dispatch

    def new_call(self, extension: str, caller: str = "79001234567", language: str = "en") -> str:
        n = next(self._ids)
        ch = FakeChannel(id=f"fake.{n}", name=f"PJSIP/client-{language}-{n:08x}", caller=caller, language=language)
        self.channels[ch.id] = ch
        self._emit({"type": "StasisStart", "args": ["direct", extension], "channel": self._json(ch)})
        return ch.id

    def caller_hangs_up(self, channel_id: str) -> None:
        ch = self.channels[channel_id]
        ch.actions.append(("caller_hangup",))
        self._gone(ch)

    def actions_for(self, channel_id: str) -> list[tuple]:
        return self.channels[channel_id].actions

    async def settle(self, rounds: int = 200) -> None:
        """Lets every simulated event and flow task run to quiet."""
        for _ in range(rounds):
            await asyncio.sleep(0)
            if self._pending:
                await asyncio.gather(*list(self._pending))

    # ---- ARI side -------------------------------------------------------------------------------

    async def close(self) -> None:
        pass

    async def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        await asyncio.sleep(0)
        for prefix, error in self.failing.items():
            if path.startswith(prefix):
                raise error
        parts = path.strip("/").split("/")
        if parts[0] == "applications":
            return None
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
        if op == "variable":
            if method == "GET":
                if params["variable"] not in ch.vars:
                    raise AriError(404, "Provided variable was not found", method, path)
                return {"value": ch.vars[params["variable"]]}
            ch.vars[params["variable"]] = params.get("value", "")
            return None
        if not ch.in_stasis:
            raise AriError(409, "Channel not in Stasis application", method, path)
        if op in ("ring", "answer", "progress"):
            ch.actions.append((op,))
            return None
        if op == "play":
            media = params["media"]
            ch.actions.append(("play", media))
            self._later(self._play(ch, parts[3], media))
            return {"id": parts[3]}
        if op == "continue":
            ch.in_stasis = False
            self._emit({"type": "StasisEnd", "channel": self._json(ch)})
            if params["context"] == "pbx-voicemail":
                self._later(self._voicemail(ch))
            else:
                self._later(self._dial(ch))
            return None
        raise AriError(404, f"fake: no route {method} {path}", method, path)

    # ---- simulation -----------------------------------------------------------------------------

    def _json(self, ch: FakeChannel) -> dict:
        return {"id": ch.id, "name": ch.name, "caller": {"number": ch.caller}, "language": ch.language}

    def _emit(self, event: dict) -> None:
        assert self.dispatch is not None, "call fake.attach(app) first"
        self.dispatch(event)

    def _later(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _gone(self, ch: FakeChannel, by_app: bool = False) -> None:
        if not ch.alive:
            return
        ch.alive = False
        if not by_app:
            self._emit({"type": "ChannelHangupRequest", "channel": self._json(ch)})
        self._emit({"type": "ChannelDestroyed", "channel": self._json(ch), "cause": 16})

    def _reenter(self, ch: FakeChannel, args: list[str]) -> None:
        ch.in_stasis = True
        self._emit({"type": "StasisStart", "args": args, "channel": self._json(ch)})

    async def _play(self, ch: FakeChannel, playback_id: str, media: str) -> None:
        await asyncio.sleep(0)
        pb = {"id": playback_id, "media_uri": media, "target_uri": f"channel:{ch.id}", "state": "playing"}
        self._emit({"type": "PlaybackStarted", "playback": pb})
        await asyncio.sleep(0)
        if ch.alive:
            self._emit({"type": "PlaybackFinished", "playback": {**pb, "state": "done"}})

    async def _dial(self, ch: FakeChannel) -> None:
        await asyncio.sleep(0)
        endpoints = ch.vars["PBX_DIAL"].split("&")
        timeout = int(ch.vars["PBX_RINGTIME"])
        ch.actions.append(("dial", tuple(endpoints), timeout))
        behaviours = {ep: self.phones.get(ep, "no_answer") for ep in endpoints}
        peers = {ep: f"{ep}-{next(self._ids):08x}" for ep in endpoints}
        for ep in endpoints:
            self._emit({"type": "Dial", "caller": self._json(ch), "peer": {"name": peers[ep]}, "dialstatus": ""})
        answering = [ep for ep in endpoints if behaviours[ep] == "answer"]
        if answering:
            winner = answering[0]
            self._emit({"type": "Dial", "caller": self._json(ch), "peer": {"name": peers[winner]}, "dialstatus": "ANSWER"})
            ch.actions.append(("talk", winner))
            await asyncio.sleep(0)
            if self.talk_ends == "caller":
                self.caller_hangs_up(ch.id)
            else:
                self._reenter(ch, ["dialed", "ANSWER", "16"])
            return
        values = set(behaviours.values())
        if values == {"busy"}:
            status = "BUSY"
        elif values == {"unreachable"}:
            status = "CHANUNAVAIL"
        else:
            status = "NOANSWER"
            self.elapsed += timeout
        self._reenter(ch, ["dialed", status, "0"])

    async def _voicemail(self, ch: FakeChannel) -> None:
        await asyncio.sleep(0)
        box = ch.vars["PBX_MAILBOX"]
        ch.actions.append(("voicemail", box))
        varset = lambda k, v: self._emit(  # noqa: E731
            {"type": "ChannelVarset", "variable": k, "value": v, "channel": self._json(ch)}
        )
        varset("PBX_VM_BEFORE", "0")
        if self.voicemail.get(box, False):
            # A caller ends a message by hanging up; the h extension counts the box again.
            ch.alive = False
            self._emit({"type": "ChannelHangupRequest", "channel": self._json(ch)})
            varset("PBX_VM_AFTER", "1")
            self._emit({"type": "ChannelDestroyed", "channel": self._json(ch), "cause": 16})
        else:
            self._reenter(ch, ["voicemail", "SUCCESS", "0", "0"])
