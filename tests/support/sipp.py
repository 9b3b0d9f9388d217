"""SIPp as callers and employees' phones, with what each side saw read back from SIPp's
message trace."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tests.support.wait import until

SCENARIOS = Path(__file__).resolve().parent.parent / "sipp"
BENCH_SCENARIOS = Path(__file__).resolve().parents[2] / "bench" / "sipp"  # many calls per SIPp process
PCAP = Path("/usr/share/sip-tester/g711a.pcap")
KEY_1 = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")  # RFC 4733: the key 1 pressed, 0.2 s
CLIENTS_PORT = 5301  # the test bed's outgoing route for callbacks (pjsip.conf [clients])
ASTERISK_SIP = "127.0.0.1:5060"
# Phones of the test bed's pjsip.conf: extension 1NN listens on 127.0.0.1:51NN.
PHONE_PORT = {ext: 5000 + int(ext) for ext in ("101", "102", "103", "104", "105")}

_MSG_HEADER = re.compile(r"^-+ (\d{4}-\d\d-\d\d\s[\d:.]+)")
_DIRECTION = re.compile(r"^(UDP|TCP) message (sent|received)")


@dataclass
class SipMessage:
    at: datetime
    sent: bool
    first_line: str
    text: str

    @property
    def code(self) -> int | None:
        m = re.match(r"SIP/2\.0 (\d{3})", self.first_line)
        return int(m.group(1)) if m else None

    @property
    def cseq_method(self) -> str | None:
        m = re.search(r"^CSeq:\s*\d+\s+(\w+)", self.text, re.MULTILINE | re.IGNORECASE)
        return m.group(1) if m else None

    @property
    def method(self) -> str | None:
        return None if self.first_line.startswith("SIP/2.0") else self.first_line.split(" ", 1)[0]


def _is(m: SipMessage, what: str | int, to: str) -> bool:
    if isinstance(what, int):
        return m.code == what and m.cseq_method == to
    return m.method == what


def read_trace(path: Path) -> list[SipMessage]:
    if not path.exists():
        return []
    messages: list[SipMessage] = []
    at: datetime | None = None
    sent = False
    lines: list[str] = []

    def flush() -> None:
        body = [l for l in lines if l.strip()]
        if at is not None and body:
            messages.append(SipMessage(at, sent, body[0].strip(), "\n".join(lines)))

    for line in path.read_text(errors="replace").splitlines():
        m = _MSG_HEADER.match(line)
        if m:
            flush()
            at = datetime.strptime(m.group(1).strip()[:26], "%Y-%m-%d %H:%M:%S.%f")
            lines = []
            continue
        d = _DIRECTION.match(line)
        if d:
            sent = d.group(2) == "sent"
            continue
        lines.append(line)
    flush()
    return messages


@dataclass
class Sipp:
    """One SIPp process; ``messages`` reads its trace (what it sent and received)."""

    name: str
    args: list[str]
    workdir: Path
    proc: subprocess.Popen | None = None
    trace: Path = field(init=False)

    def __post_init__(self) -> None:
        self.trace = self.workdir / f"{self.name}.msg.log"

    def start(self) -> "Sipp":
        cmd = [
            shutil.which("sipp") or "sipp",
            *self.args,
            "-trace_msg",
            "-message_file",
            str(self.trace),
            "-trace_err",
            "-error_file",
            str(self.workdir / f"{self.name}.err.log"),
            "-nostdin",
            "-nd",
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=open(self.workdir / f"{self.name}.stderr", "w")
        )
        return self

    @property
    def messages(self) -> list[SipMessage]:
        return read_trace(self.trace)

    def received(self, what: str | int, to: str = "INVITE") -> list[SipMessage]:
        """Messages received: a method name ("INVITE") or a response code (486) to ``to``."""
        return [m for m in self.messages if not m.sent and _is(m, what, to)]

    def sent(self, what: str | int, to: str = "INVITE") -> list[SipMessage]:
        return [m for m in self.messages if m.sent and _is(m, what, to)]

    async def wait(self, timeout: float) -> int:
        assert self.proc is not None
        await until(lambda: self.proc.poll() is not None, timeout, f"SIPp {self.name} ends its scenario")
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)  # SIPp's soft stop
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class SipBed:
    """Starts phones and callers for one test and stops them all afterwards."""

    def __init__(self, workdir: Path | None = None):
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="pbx-sipp-"))
        self.procs: list[Sipp] = []
        self._n = 0

    def _scenario(self, name: str, values: dict[str, object], folder: Path = SCENARIOS) -> str:
        """SIPp takes no keywords in timeouts and pauses: write a copy with the values in."""
        text = (folder / name).read_text()
        for key, value in values.items():
            text = text.replace(f"[{key}]", str(value))
        path = self.workdir / f"{self._n + 1:02d}-{name}"
        path.write_text(text)
        return str(path)

    def _spawn(self, name: str, args: list[str]) -> Sipp:
        self._n += 1
        p = Sipp(f"{self._n:02d}-{name}", args, self.workdir).start()
        self.procs.append(p)
        return p

    def phone(self, ext: str, behaviour: str, answer_delay_ms: int = 500, calls: int = 1) -> Sipp:
        """behaviour: ring_forever | answer | busy. The phone takes ``calls`` calls, one at a time."""
        scenario = {"ring_forever": "phone_ring_forever.xml", "answer": "phone_answer.xml", "busy": "phone_busy.xml"}[
            behaviour
        ]
        port = PHONE_PORT[ext]
        args = ["-sf", self._scenario(scenario, {"answer_delay": answer_delay_ms}), "-i", "127.0.0.1", "-p", str(port),
                "-m", str(calls), "-mi", "127.0.0.1", "-mp", str(20000 + (port - 5100) * 10)]
        return self._spawn(f"phone{ext}-{behaviour}", args)

    def keys_phone(self, ext: str, calls: int = 1, answer_delay_ms: int = 500, key_after_ms: int = 1500,
                   pcap: Path = KEY_1) -> Sipp:
        """An employee's phone that answers and presses 1 (RFC 4733) ``key_after_ms`` later, then
        waits for the BYE; ``calls`` calls one after another."""
        port = PHONE_PORT[ext]
        media = 20000 + (port - 5100) * 10
        values = {"answer_delay": answer_delay_ms, "dtmf_delay": key_after_ms, "pcap": pcap}
        args = ["-sf", self._scenario("phone_dtmf.xml", values), "-i", "127.0.0.1", "-p", str(port),
                "-m", str(calls), "-mi", "127.0.0.1", "-mp", str(media)]
        return self._spawn(f"phone{ext}-keys", args)

    def client_phone(self, behaviour: str, answer_delay_ms: int = 500) -> Sipp:
        """The client's phone behind the callbacks' route: ring_forever | answer | busy."""
        scenario = {"ring_forever": "phone_ring_forever.xml", "answer": "phone_answer.xml", "busy": "phone_busy.xml"}[
            behaviour
        ]
        args = ["-sf", self._scenario(scenario, {"answer_delay": answer_delay_ms}), "-i", "127.0.0.1",
                "-p", str(CLIENTS_PORT), "-m", "1", "-mi", "127.0.0.1", "-mp", "20910"]
        return self._spawn(f"client-{behaviour}", args)

    def call_pressing(self, ext: str, key_after_ms: int = 1500, stay_ms: int = 15000, caller: str = "79001234567",
                      pcap: Path = KEY_1, source_ip: str = "127.0.0.1") -> Sipp:
        """A client calls ``ext``; once answered (for a callback offer) they press 1 after
        ``key_after_ms`` and stay until Asterisk hangs up (at most ``stay_ms`` more)."""
        local_port = 5201 + self._n
        values = {"talk": stay_ms, "pcap": pcap, "pcap_delay": key_after_ms}
        args = [ASTERISK_SIP, "-sf", self._scenario("caller_dtmf.xml", values), "-s", ext, "-i", source_ip,
                "-p", str(local_port), "-m", "1", "-mi", source_ip, "-mp", str(30000 + self._n * 10),
                "-key", "caller", caller, "-timeout", "300s"]
        return self._spawn(f"call{ext}-keys", args)

    def call(self, ext: str, talk_ms: int = 2000, caller: str = "79001234567", source_ip: str = "127.0.0.1",
             cancel_after_ms: int | None = None, audio_after_ms: int = 0) -> Sipp:
        """A client calls ``ext``; with ``cancel_after_ms`` they hang up while it rings. Once
        answered they send 4.7 s of audio after ``audio_after_ms`` and stay ``talk_ms`` more."""
        scenario = "caller_cancel.xml" if cancel_after_ms is not None else "caller.xml"
        talk = cancel_after_ms if cancel_after_ms is not None else talk_ms
        local_port = 5201 + self._n
        args = [ASTERISK_SIP, "-sf", self._scenario(scenario, {"talk": talk, "pcap": PCAP, "pcap_delay": audio_after_ms}), "-s", ext,
                "-i", source_ip, "-p", str(local_port), "-m", "1", "-mi", source_ip, "-mp", str(30000 + self._n * 10),
                "-key", "caller", caller, "-timeout", "300s"]
        return self._spawn(f"call{ext}", args)

    def burst(self, ext: str, calls: int, rate: int) -> tuple[Sipp, Sipp, Sipp]:
        """``calls`` clients call ``ext``, ``rate`` new ones a second, each talking 1 s once
        answered; 101's phone rings on for every call, 102's answers each after 200 ms.
        Returns (101's phone, 102's phone, the callers)."""
        many = ["-m", str(calls), "-l", str(calls)]
        # The phones answer more calls than are placed: a phone that stopped after N would leave
        # Asterisk retransmitting an N+1st INVITE for 32 s, into the next test's phone on that port.
        spare = ["-m", str(2 * calls), "-l", str(2 * calls)]

        def bench(name: str, scenario: str, values: dict[str, object], args: list[str]) -> Sipp:
            return self._spawn(name, ["-sf", self._scenario(scenario, values, BENCH_SCENARIOS), *args])

        employee = bench("burst-101", "phone_ring_forever.xml", {},
                         ["-i", "127.0.0.1", "-p", str(PHONE_PORT["101"]), *spare])
        colleague = bench("burst-102", "phone_answer.xml", {"answer_delay": 200},
                          ["-i", "127.0.0.1", "-p", str(PHONE_PORT["102"]), *spare])
        callers = bench("burst-callers", "caller.xml", {"talk": 1000},
                        [ASTERISK_SIP, "-s", ext, "-i", "127.0.0.1", "-p", "5299", "-r", str(rate), *many])
        return employee, colleague, callers

    async def finish(self, timeout: float = 10.0) -> None:
        """Waits until every phone and caller has finished its scenario (traces complete)."""
        for p in self.procs:
            try:
                await p.wait(timeout)
            except TimeoutError:
                p.stop()

    def stop(self) -> None:
        for p in self.procs:
            p.stop()
