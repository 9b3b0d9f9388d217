"""A demo call a newcomer can watch: a client calls Ivan (101), who does not pick up; after his
ring time the client hears the announcement and is forwarded to Petr (102), who answers.
Runs against the Asterisk + app started by scripts/run; prints each step as it happens."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.sipp import SipBed  # noqa: E402


def describe(who: str, m) -> str | None:
    if who == "client":
        if m.method == "INVITE":
            return "client dials 101 (Ivan Petrov)"
        if m.code == 180 and not m.sent:
            return "client hears ringing"
        if m.code == 183 and not m.sent:
            return "client hears the announcement (early media: not answered, not billed)"
        if m.code == 200 and m.cseq_method == "INVITE" and not m.sent:
            return "client is answered"
        if m.method == "BYE":
            return "client hangs up" if m.sent else "client is hung up"
        if m.code and m.code >= 400 and not m.sent:
            return f"client gets {m.first_line[8:]}"
        return None
    name = {"101": "Ivan (101)", "102": "Petr (102)"}[who]
    if m.method == "INVITE" and not m.sent:
        return f"{name}'s phone rings"
    if m.method == "CANCEL" and not m.sent:
        return f"{name}'s phone stops ringing: no answer in his ring time"
    if m.code == 200 and m.cseq_method == "INVITE" and m.sent:
        return f"{name} answers: client and {name} talk"
    return None


async def main() -> int:
    bed = SipBed()
    ivan = bed.phone("101", "ring_forever")
    petr = bed.phone("102", "answer", answer_delay_ms=2000)
    await asyncio.sleep(0.3)
    print("demo: policy config/policy.yaml — 101 rings 20 s, then the standard announcement and a forward to 102\n")
    client = bed.call("101", talk_ms=4000)
    seen: set[tuple[str, int]] = set()
    said: set[str] = set()  # SIP repeats itself (several 180s, 183s): tell each thing once
    start = None
    try:
        while True:
            events = []
            for who, p in (("client", client), ("101", ivan), ("102", petr)):
                for i, m in enumerate(p.messages):
                    if (who, i) not in seen:
                        seen.add((who, i))
                        text = describe(who, m)
                        if text and text not in said:
                            said.add(text)
                            events.append((m.at, text))
            for at, text in sorted(events):
                start = start or at
                print(f"  {(at - start).total_seconds():6.2f} s  {text}", flush=True)
            if client.proc.poll() is not None and not events:
                break
            await asyncio.sleep(0.1)
    finally:
        bed.stop()
    print("\ndemo: done. SIP traces of each side are in", bed.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
