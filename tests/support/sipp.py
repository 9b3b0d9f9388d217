"""SIPp as callers and employees' phones, with what each side saw read back from SIPp's
message trace.

Phones register as real ones do (config/asterisk/pjsip.conf): each phone is one SIPp process in
client mode on 127.0.0.21 whose main scenario (sipp/phone.xml) registers with digest auth and,
once the phone has served its calls, unregisters; the calls themselves and Asterisk's qualify
OPTIONS arrive outside that dialog and are served by the out-of-call scenario (-oocsf), the
phone's behaviour. ``phone()`` returns once Asterisk has accepted the registration."""

from __future__ import annotations

import itertools
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
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
# Phones of the test bed's pjsip.conf: extension 1NN's first device listens on 127.0.0.21:51NN,
# its second on :61NN. No identify section matches 127.0.0.21: phones are known by their user
# name and authenticate.
PHONES_IP = "127.0.0.21"
PHONE_PORT = {ext: 5000 + int(ext) for ext in ("101", "102", "103", "104", "105", "109")}
CARRIER_IP = "127.0.0.6"  # the carrier's trunk (pjsip.conf [carrier]): calls to the company's numbers
CARRIER_AGI_IP = "127.0.0.7"  # the same carrier into FastAGI mode (pjsip.conf [carrier-agi])
# The carrier's side of the outbound trunk (pjsip.conf [carrier-out]): where calls to mobiles go.
CARRIER_OUT = ("127.0.0.8", 5070)
REGISTER_EXPIRES = 120  # s; a phone killed without unregistering is gone from Asterisk after this


_LINES = itertools.count(int(time.time() * 1000) % 10**9)


def phone_secret(ext: str) -> str:
    """The test bed's password of ``ext``'s phone (pjsip.conf)."""
    return f"testbed-{ext}-secret"

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


def free_udp_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


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
    # A phone's main scenario waits for its calls and ignores SIPp's soft stop; its trace is
    # written as each message goes, so killing it loses nothing (SipBed.stop unregisters it).
    kill_on_stop: bool = False

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
        if self.proc is not None and self.proc.poll() is None and self.kill_on_stop:
            self.proc.kill()
            self.proc.wait()
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
        self.registered: list[tuple[str, str, Sipp]] = []  # (ext, contact, phone) for stop()

    # Where phones register; a cluster's bed registers each phone with every node.
    registrar = ASTERISK_SIP
    more_registrars: tuple[str, ...] = ()

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

    def _device(self, ext: str, device: int) -> tuple[int, int]:
        """The SIP and media ports of ``ext``'s ``device``-th phone (1 or 2)."""
        port = PHONE_PORT[ext] + 1000 * (device - 1)
        return port, 20000 + 1000 * (device - 1) + (PHONE_PORT[ext] - 5100) * 10

    def _registering(self, ext: str, name: str, behaviour: str, values: dict[str, object], calls: int,
                     device: int, folder: Path = SCENARIOS) -> Sipp:
        """Starts ``ext``'s phone serving ``calls`` calls with the scenario ``behaviour``; returns
        once Asterisk has accepted its registration (the contact is there to be dialled)."""
        port, media = self._device(ext, device)
        # A new contact each time (;line= as desk phones add): Asterisk keeps a contact's qualify
        # status by name, and a re-registered old one could start out "unavailable".
        contact = f"<sip:{ext}@{PHONES_IP}:{port};line={next(_LINES)}>"
        # The first device clears whatever an earlier phone left (killed, or a crashed session):
        # start device 1 first.
        clear = "*" if device == 1 else contact
        main = self._scenario("phone.xml", {"ext": ext, "secret": phone_secret(ext), "contact": contact,
                                            "clear": clear, "expires": REGISTER_EXPIRES, "calls": calls})
        ooc = self._scenario(behaviour, values, folder)
        args = [self.registrar, "-sf", main, "-oocsf", ooc, "-i", PHONES_IP, "-p", str(port), "-m", "1",
                "-mi", PHONES_IP, "-mp", str(media)]
        p = self._spawn(name, args)
        p.kill_on_stop = True
        self.registered.append((ext, contact, p))
        deadline = time.monotonic() + 10
        # Two 200s to REGISTER: the old contact removed, this one added.
        while len(p.received(200, to="REGISTER")) < 2:
            if (p.proc is not None and p.proc.poll() is not None) or time.monotonic() > deadline:
                p.stop()
                raise AssertionError(f"{ext}'s phone did not register with Asterisk ({self.registrar}): "
                                     f"{[m.first_line for m in p.messages]}; see {p.trace}")
            time.sleep(0.02)
        for registrar in self.more_registrars:
            self.register(ext, clear, 0, registrar)  # as the phone does with its registrar
            self.register(ext, contact, REGISTER_EXPIRES, registrar)
        return p

    def register(self, ext: str, contact: str, expires: int, registrar: str | None = None) -> None:
        """One REGISTER of ``contact`` for ``ext`` from a passing socket (``expires`` 0: removes it;
        the contact ``*`` with 0: every contact of ``ext``)."""
        self._n += 1
        scenario = self._scenario("phone_register.xml", {"ext": ext, "secret": phone_secret(ext),
                                                         "contact": contact, "expires": expires})
        done = subprocess.run([shutil.which("sipp") or "sipp", registrar or self.registrar, "-sf", scenario,
                               "-i", PHONES_IP, "-p", str(free_udp_port(PHONES_IP)), "-m", "1", "-nostdin", "-nd",
                               "-timeout", "5s", "-timeout_error"], cwd=self.workdir, capture_output=True, timeout=15)
        if done.returncode != 0:
            raise AssertionError(f"REGISTER {contact} for {ext} (expires {expires}) failed: rc {done.returncode}")

    def phone(self, ext: str, behaviour: str, answer_delay_ms: int = 500, calls: int = 1, device: int = 1) -> Sipp:
        """behaviour: ring_forever | answer | busy. The phone takes ``calls`` calls, one at a time.
        ``device`` 2: the employee's second phone (both ring when the employee is called)."""
        scenario = {"ring_forever": "phone_ring_forever.xml", "answer": "phone_answer.xml", "busy": "phone_busy.xml"}[
            behaviour
        ]
        suffix = "" if device == 1 else f"-dev{device}"
        return self._registering(ext, f"phone{ext}{suffix}-{behaviour}", scenario, {"answer_delay": answer_delay_ms},
                                 calls, device)

    def keys_phone(self, ext: str, calls: int = 1, answer_delay_ms: int = 500, key_after_ms: int = 1500,
                   pcap: Path = KEY_1) -> Sipp:
        """An employee's phone that answers and presses 1 (RFC 4733) ``key_after_ms`` later, then
        waits for the BYE; ``calls`` calls one after another."""
        values = {"answer_delay": answer_delay_ms, "dtmf_delay": key_after_ms, "pcap": pcap}
        return self._registering(ext, f"phone{ext}-keys", "phone_dtmf.xml", values, calls, 1)

    def client_phone(self, behaviour: str, answer_delay_ms: int = 500) -> Sipp:
        """The client's phone behind the callbacks' route: ring_forever | answer | busy."""
        scenario = {"ring_forever": "phone_ring_forever.xml", "answer": "phone_answer.xml", "busy": "phone_busy.xml"}[
            behaviour
        ]
        args = ["-sf", self._scenario(scenario, {"answer_delay": answer_delay_ms}), "-i", "127.0.0.1",
                "-p", str(CLIENTS_PORT), "-m", "1", "-mi", "127.0.0.1", "-mp", "20910"]
        return self._spawn(f"client-{behaviour}", args)

    def carrier_out(self, behaviour: str, answer_delay_ms: int = 300, key_after_ms: int = 500,
                    pcap: Path = KEY_1) -> Sipp:
        """The carrier taking one call out to a mobile (pjsip.conf [carrier-out]); its trace holds
        the INVITE as Asterisk sent it. behaviour: confirm (answers, then the key ``pcap`` as RFC
        4733 ``key_after_ms`` later) | answer (answers, sends nothing) | busy (486) | unavailable
        (503) | ring_forever (180, waits for the CANCEL)."""
        scenario, values = {
            "confirm": ("phone_dtmf.xml", {"answer_delay": answer_delay_ms, "dtmf_delay": key_after_ms, "pcap": pcap}),
            "answer": ("phone_answer.xml", {"answer_delay": answer_delay_ms}),
            "busy": ("phone_reject.xml", {"code": 486, "reason": "Busy Here"}),
            "unavailable": ("phone_reject.xml", {"code": 503, "reason": "Service Unavailable"}),
            "ring_forever": ("phone_ring_forever.xml", {}),
        }[behaviour]
        ip, port = CARRIER_OUT
        args = ["-sf", self._scenario(scenario, values), "-i", ip, "-p", str(port), "-m", "1", "-mi", ip,
                "-mp", "20950"]
        return self._spawn(f"carrier-out-{behaviour}", args)

    def carrier_call(self, number: str, agi: bool = False, **kwargs) -> Sipp:
        """The carrier delivers a client's call to the company's ``number`` (a DID, in whatever
        form the carrier writes it), to the engines or (``agi``) to FastAGI mode; otherwise as
        ``call``."""
        return self.call(number, source_ip=CARRIER_AGI_IP if agi else CARRIER_IP, **kwargs)

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

        def bench(name: str, scenario: str, values: dict[str, object], args: list[str]) -> Sipp:
            return self._spawn(name, ["-sf", self._scenario(scenario, values, BENCH_SCENARIOS), *args])

        employee = self._registering("101", "burst-101", "phone_ring_forever.xml", {}, 2 * calls, 1, BENCH_SCENARIOS)
        colleague = self._registering("102", "burst-102", "phone_answer.xml", {"answer_delay": 200}, 2 * calls, 1,
                                      BENCH_SCENARIOS)
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
        # A phone that ended its scenario has unregistered; one still running is unregistered
        # before it is stopped, while it still answers qualify: its contact would go on being
        # dialled (and qualified) in the next test.
        for ext, contact, p in self.registered:
            running = p.proc is not None and p.proc.poll() is None
            for registrar in (self.registrar, *self.more_registrars) if running else self.more_registrars:
                try:
                    self.register(ext, contact, 0, registrar)
                except (AssertionError, subprocess.TimeoutExpired):
                    pass  # Asterisk is gone: its contacts expire (REGISTER_EXPIRES)
        self.registered.clear()
        for p in self.procs:
            p.stop()
