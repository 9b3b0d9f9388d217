"""A FastAGI client that plays Asterisk's side of a request: sends the agi_* headers, answers
each command the server sends with ``200 result=1``, and keeps what was set. With ``secret`` it
answers the server's challenge as the real dialplan does (SHA1 of nonce:secret, secret.py);
without, it is the issue-32 forger, who answers everything with ``200 result=1``."""

from __future__ import annotations

import asyncio
import hashlib
import re

_CHALLENGE = re.compile(r"^GET FULL VARIABLE \$\{SHA1\(([0-9a-f]+):\$\{PBX_AGI_SECRET\}\)\}$")
_SET = re.compile(r'^SET VARIABLE (\S+) "(.*)"$')
_GET = re.compile(r'^GET VARIABLE (\S+)$')


class AgiAnswers:
    def __init__(self):
        self.commands: list[str] = []
        self.variables: dict[str, str] = {}
        self.closed_unread = False  # the server closed before sending any command

    @property
    def plan(self) -> str:
        return "".join(self.variables.get(n, "") for n in ("PBX_PLAN", "PBX_PLAN2", "PBX_PLAN3", "PBX_PLAN4"))


async def request(port: int, script: str, args: list[str], uniqueid: str = "1795986778.0", *,
                  secret: bytes | None = None, source: str = "127.0.0.1", timeout: float = 5.0,
                  channel: dict[str, str] | None = None, callerid: str = "") -> AgiAnswers:
    """``channel``: the channel's variables, for the server's GET VARIABLE (none set: result=0)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    headers = {"agi_network": "yes", "agi_network_script": script, "agi_request": f"agi://127.0.0.1/{script}",
               "agi_channel": "PJSIP/client-agi-00000001", "agi_uniqueid": uniqueid, "agi_extension": "call"}
    if callerid:
        headers["agi_callerid"] = callerid
    headers.update({f"agi_arg_{n}": a for n, a in enumerate(args, 1)})
    answers = AgiAnswers()
    try:
        writer.write("".join(f"{k}: {v}\n" for k, v in headers.items()).encode() + b"\n")
        await writer.drain()
        while True:
            line = (await asyncio.wait_for(reader.readline(), timeout)).decode().rstrip("\n")
            if not line:
                answers.closed_unread = not answers.commands
                return answers
            answers.commands.append(line)
            challenge = _CHALLENGE.match(line)
            get = _GET.match(line)
            if get and channel is not None:
                value = channel.get(get.group(1))
                writer.write(b"200 result=0\n" if value is None else f"200 result=1 ({value})\n".encode())
            elif challenge and secret is not None:
                value = hashlib.sha1(challenge.group(1).encode() + b":" + secret).hexdigest()
                writer.write(f"200 result=1 ({value})\n".encode())
            else:
                writer.write(b"200 result=1\n")
                set_ = _SET.match(line)
                if set_:
                    names, values = set_.group(1), set_.group(2)
                    if names.startswith("ARRAY("):
                        answers.variables.update(zip(names[6:-1].split(","), values.split(",")))
                    else:
                        answers.variables[names] = values
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        answers.closed_unread = not answers.commands
        return answers
    finally:
        writer.close()


def report(answers: AgiAnswers, dialstatus: str = "ANSWER", talk_ms: int = 754_000) -> list[str]:
    """The `next` arguments the dialplan would send after the step ``answers`` handed out."""
    return [answers.variables.get("PBX_STATE", ""), answers.plan, dialstatus, "16",
            f"{answers.variables.get('PBX_DIAL', 'PJSIP/102')}-00000002", str(talk_ms), "", "", "", ""]


class AgiDialplan:
    """Plays dialplan/pbx_agi.conf against FastAGI servers, as FakeAsterisk (pbx_app.testing)
    plays pbx_app.conf against ARI engines: the phones behave as ``phones`` says (answer |
    no_answer | busy | unreachable | caller_leaves), ``talk_ends`` says who hangs up after an
    answer, ``voicemail`` whether the caller leaves a message in a box, ``key`` what the client
    presses at a callback offer. Each request goes to the next of ``ports`` in turn: with two,
    every step is taken by the other server, as after a restart. ``steps`` keeps what the
    caller's channel went through."""

    def __init__(self, ports: list[int], phones: dict[str, str] | None = None, talk_ends: str = "callee",
                 voicemail: dict[str, bool] | None = None, key: str = "", secret: bytes | None = None):
        self.ports, self.phones, self.talk_ends = ports, phones or {}, talk_ends
        self.voicemail, self.key, self.secret = voicemail or {}, key, secret
        self.vars: dict[str, str] = {}
        self.steps: list[tuple] = []
        self.served = 0

    async def _request(self, script: str, args: list[str], caller: str, uniqueid: str) -> None:
        port = self.ports[self.served % len(self.ports)]
        self.served += 1
        answers = await request(port, script, args, uniqueid, secret=self.secret, channel=self.vars, callerid=caller)
        self.vars.update(answers.variables)

    async def call(self, extension: str, caller: str = "79001234567", uniqueid: str = "fake.1") -> None:
        self.vars.clear()
        await self._request("call", [extension, caller], caller, uniqueid)
        while True:
            do = self.vars.pop("PBX_DO", "")
            self.steps.append((do,))
            if do in ("", "busy", "hangup", "callback"):
                return
            route, report = await self._do(do)
            state = self.vars.get("PBX_STATE", "")
            plan = "".join(self.vars.get(n, "") for n in ("PBX_PLAN", "PBX_PLAN2", "PBX_PLAN3", "PBX_PLAN4"))
            args = [state, plan, *(report.get(f, "") for f in REPORT)]
            if route == "hangup" and (not state or state == "end"):
                return  # the h extension does nothing for a call whose journal is closed
            await self._request(route, args, caller, uniqueid)
            if route == "hangup":
                return

    async def _do(self, do: str) -> tuple[str, dict[str, str]]:
        """One step of pbx-agi: the route it ends with (next, or hangup from the h extension) and its report."""
        v = self.vars
        if do == "ring":
            endpoints = v["PBX_DIAL"].split("&")
            self.steps.append(("dial", tuple(endpoints), int(v["PBX_RINGTIME"])))
            behaviours = [self.phones.get(ep, "no_answer") for ep in endpoints]
            if "caller_leaves" in behaviours:
                return "hangup", {"dialstatus": "CANCEL", "hangupcause": "16"}
            if "answer" in behaviours:
                peer = endpoints[behaviours.index("answer")] + "-00000002"
                report = {"dialstatus": "ANSWER", "hangupcause": "16", "peer": peer, "answered_ms": "1500"}
                return ("next" if self.talk_ends == "callee" else "hangup"), report
            status = ("BUSY" if set(behaviours) == {"busy"} else
                      "CHANUNAVAIL" if set(behaviours) == {"unreachable"} else "NOANSWER")
            return "next", {"dialstatus": status, "hangupcause": "0"}
        if do == "announce":
            self.steps.append(("play", v["PBX_SOUND"]))
            return "next", {"playback": "SUCCESS"}
        if do == "voicemail":
            box = v["PBX_MAILBOX"]
            self.steps.append(("voicemail", box))
            if self.voicemail.get(box, False):
                return "hangup", {"vm_before": "0", "vm_after": "1"}
            return "next", {"vmstatus": "SUCCESS", "vm_before": "0", "vm_after": "0"}
        if do == "offer":
            self.steps.append(("read", v["PBX_SOUND"], int(v["PBX_OFFER_TIMEOUT"])))
            v["PBX_DIGIT"] = self.key
            return "next", {}
        raise AssertionError(f"fake AGI dialplan: no label {do!r}")


REPORT = ("dialstatus", "hangupcause", "peer", "answered_ms", "playback", "vmstatus", "vm_before", "vm_after")
