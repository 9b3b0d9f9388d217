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


class AgiAnswers:
    def __init__(self):
        self.commands: list[str] = []
        self.variables: dict[str, str] = {}
        self.closed_unread = False  # the server closed before sending any command

    @property
    def plan(self) -> str:
        return "".join(self.variables.get(n, "") for n in ("PBX_PLAN", "PBX_PLAN2", "PBX_PLAN3", "PBX_PLAN4"))


async def request(port: int, script: str, args: list[str], uniqueid: str = "1795986778.0", *,
                  secret: bytes | None = None, source: str = "127.0.0.1", timeout: float = 5.0) -> AgiAnswers:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    headers = {"agi_network": "yes", "agi_network_script": script, "agi_request": f"agi://127.0.0.1/{script}",
               "agi_channel": "PJSIP/client-agi-00000001", "agi_uniqueid": uniqueid, "agi_extension": "call"}
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
            if challenge and secret is not None:
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
