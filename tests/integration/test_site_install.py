"""Issue 23, item 2, on real calls: Debian's stock /etc/asterisk (the asterisk-config package of the
test bed's root, untouched), plus what any site has of its own (phones, a caller trunk, an inbound
context, a mailbox), then `pbx-app asterisk install` and a reload. A forwarded call is answered,
a voicemail gets its message, history and the CDR say so, and a stock context (the echo test, 600
in [demo]) still answers. The site's Asterisk runs from the test bed's root with its own folders
(asterisk -C), in place of the test bed's, on the same ports."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pbx_app.history.rows import history_row
from tests.integration.conftest import TESTBED, asterisk_root
from tests.integration.conftest import testbed as run_testbed
from tests.integration.test_history_calls import Cdr
from tests.support.sipp import phone_secret
from tests.support.engines import EngineProcess, all_ended
from tests.support.wait import until

ROOT = asterisk_root()
SITE = "/site-test"  # inside the root
HOST_SITE = ROOT / SITE.lstrip("/")
ETC = HOST_SITE / "etc/asterisk"
ASTERISK = ["chroot", str(ROOT), "/usr/sbin/asterisk", "-C", f"{SITE}/etc/asterisk/asterisk.conf"]

POLICY = """
employees:
  "101": {name: Ivan Petrov, ring_time: 2, on_no_answer: {action: forward, to: "102", announcement: none}}
  "102": {name: Petr Ivanov, ring_time: 6}
  "104": {name: Olga Kuznetsova, ring_time: 2, mailbox: "104@default", on_no_answer: {action: voicemail}}
"""

# What the site has of its own before pbx_app comes: its SIP (a trunk from 127.0.0.1 into its
# inbound context; a second caller at 127.0.0.3 in the stock [default] context), its phones,
# its inbound routes, and a mailbox. pbx-app asterisk install adds none of this.
SITE_PJSIP = """
[transport-udp]
type = transport
protocol = udp
bind = 127.0.0.1:5060
[caller-template](!)
type = endpoint
disallow = all
allow = ulaw,alaw,gsm
direct_media = no
rtp_symmetric = yes
[trunk](caller-template)
context = from-trunk
[trunk]
type = identify
endpoint = trunk
match = 127.0.0.1
[office](caller-template)
context = default
[office]
type = identify
endpoint = office
match = 127.0.0.3
"""
PHONE = """
[{n}](caller-template)
context = default
aors = {n}
auth = {n}
[{n}]
type = auth
auth_type = userpass
username = {n}
password = {secret}
[{n}]
type = aor
max_contacts = 2
remove_existing = yes
"""
SITE_EXTENSIONS = """
[from-trunk]
exten => _10X,1,Goto(pbx-direct,${EXTEN},1)
"""


def site_asterisk(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ASTERISK, "-rx", " ".join(command)], capture_output=True, text=True, timeout=30)


def prepare_site() -> None:
    stock = Path(run_testbed("stock-etc").stdout.strip())
    shutil.rmtree(HOST_SITE, ignore_errors=True)
    shutil.copytree(stock, ETC)
    for folder in ("run", "log/cdr-csv", "spool", "lib"):
        (HOST_SITE / folder).mkdir(parents=True)
    # Only where this Asterisk keeps its files moves (the stock [directories] is a disabled template).
    conf = (ETC / "asterisk.conf").read_text()
    directories = (f"[directories]\nastetcdir => {SITE}/etc/asterisk\nastrundir => {SITE}/run\nastlogdir => {SITE}/log\n"
                   f"astspooldir => {SITE}/spool\nastvarlibdir => /var/lib/asterisk\nastdbdir => {SITE}/lib\n"
                   "astdatadir => /usr/share/asterisk\nastmoddir => /usr/lib/x86_64-linux-gnu/asterisk/modules\n")
    conf, found = re.subn(r"^\[directories\]\(!\)", lambda _: directories + "[stock-directories](!)", conf, count=1, flags=re.M)
    assert found, "the stock asterisk.conf has a [directories](!) template"
    (ETC / "asterisk.conf").write_text(conf)
    with open(ETC / "pjsip.conf", "a") as f:
        f.write(SITE_PJSIP + "".join(PHONE.format(n=n, secret=phone_secret(n)) for n in ("101", "102", "104")))
    with open(ETC / "extensions.conf", "a") as f:
        f.write(SITE_EXTENSIONS)
    with open(ETC / "voicemail.conf", "a") as f:
        f.write("\n[default](+)\n104 => 4242,Olga Kuznetsova\n")
    # Offline, unbound's lookups of the host name block PJSIP (shared notes): any site without
    # DNS does this.
    with open(ETC / "modules.conf", "a") as f:
        f.write("\n[modules](+)\nnoload => res_resolver_unbound.so\n")


@pytest.fixture
def site(asterisk, tmp_path):
    """The test bed's Asterisk stopped; the site's running from stock config plus its own lines."""
    run_testbed("stop", check=False)
    prepare_site()
    log = open(tmp_path / "site-asterisk.log", "w")
    proc = subprocess.Popen(["setsid", *ASTERISK, "-f", "-n", "-g"], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        for _ in range(150):
            if site_asterisk("core", "waitfullybooted").returncode == 0:
                break
            assert proc.poll() is None, (tmp_path / "site-asterisk.log").read_text()[-3000:]
            time.sleep(0.2)
        yield proc
    finally:
        site_asterisk("core", "stop", "now")
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # some stock modules hang in their last cleanups
            proc.kill()  # setsid and chroot exec'd: this pid is that Asterisk
            proc.wait(5)
        log.close()
        shutil.rmtree(HOST_SITE, ignore_errors=True)  # nothing of this site stays in the shared root
        started = run_testbed("start", check=False)  # the rest of the session's tests get theirs back
        assert started.returncode == 0, started.stderr


def cdr_rows(linkedid: str) -> list[Cdr]:
    import sqlite3
    path = HOST_SITE / "log/pbx_app-cdr.db"
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT dst, disposition, userfield FROM cdr WHERE linkedid = ? ORDER BY calldate, sequence",
                          (linkedid,)).fetchall()
    return rows


async def test_install_on_debians_stock_config_then_real_calls(site, sip, tmp_path, request):
    secret = HOST_SITE / "pbx_app/ari-password"
    installed = subprocess.run([str(Path(TESTBED).parents[1] / ".venv/bin/pbx-app"), "asterisk", "install",
                                "--etc", str(ETC), "--secret-file", str(secret)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    # What the command says to tell Asterisk, done as it says (no restart).
    told = re.findall(r"asterisk -rx '([^']+)'", installed.stdout.split("then tell Asterisk", 1)[1])
    assert told[:2] == ["core reload", "module load cdr_sqlite3_custom.so"], installed.stdout
    for command in told:
        site_asterisk(*command.split())
    if "core restart when convenient" in told:  # no call in progress: it restarts now
        await until(lambda: "VoiceMail" in site_asterisk("core", "show", "application", "VoiceMail").stdout, 60,
                    "VoiceMail() after the restart")
        site_asterisk("core", "waitfullybooted")

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    engine = EngineProcess(tmp_path, "a", {
        "PBX_ARI_URL": "http://127.0.0.1:8088", "PBX_ARI_USER": "pbx_app", "PBX_ARI_PASSWORD_FILE": str(secret),
        "PBX_POLICY": str(policy), "PBX_DATABASE_URL": f"sqlite:///{tmp_path}/journal.db",
        "PBX_CDR_URL": f"sqlite:///{HOST_SITE}/log/pbx_app-cdr.db"})
    request.addfinalizer(engine.stop)
    await engine.start().healthy(timeout=30)
    journal = f"sqlite:///{tmp_path}/journal.db"

    # A forward, answered.
    sip.phone("101", "ring_forever")
    colleague = sip.phone("102", "answer", answer_delay_ms=200)
    caller = sip.call("101", talk_ms=500)
    assert await caller.wait(30) == 0
    assert colleague.received("INVITE") and caller.received(200)
    [call] = await all_ended(journal, 1)
    row = history_row(call)
    assert (row.employee, row.status, row.what_happened) == ("102", "answered", "no answer; forwarded to 102, answered by 102")
    await until(lambda: len(cdr_rows(call.channel_id)) >= 2, 10, "the forward's CDR rows")
    assert [(dst, disp) for dst, disp, _ in cdr_rows(call.channel_id)] == [("101", "NO ANSWER"), ("102", "ANSWERED")]

    # Voicemail, with a message.
    sip.phone("104", "ring_forever")
    caller = sip.call("104", audio_after_ms=13000, talk_ms=6000)  # speaks after the greeting and the beep
    assert await caller.wait(45) == 0
    calls = await all_ended(journal, 2, timeout=20)
    [vm] = [c for c in calls if c.extension == "104"]
    row = history_row(vm)
    assert (row.status, row.label, row.what_happened) == ("missed", "Voicemail", "no answer; voicemail, message left")
    assert list((HOST_SITE / "spool/voicemail/default/104/INBOX").glob("msg*.txt")), "the message is in the site's spool"

    # The stock dialplan still answers: the echo test (600 in [demo], included in [default]).
    echo = sip.call("600", talk_ms=500, source_ip="127.0.0.3")
    assert await echo.wait(20) == 0
    assert echo.received(200), "the stock context answered as before"
