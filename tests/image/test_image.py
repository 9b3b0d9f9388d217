"""Issue 17: the container image as users run it. `scripts/image build` builds it (cached layers:
seconds when nothing changed), the container runs on the host's network with Asterisk and the
app inside, and real SIPp calls go into it: a forward answered by the colleague, then the
history (`pbx-app history`) and the CDR (Master.csv) are read from inside the container. And
the unit tests pass on the image's Python (sid's), not only on the host's.

These run before tests/integration in one session (paths sort so): both hold the test bed's
lock, and the integration fixture keeps it until the session ends."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.support.cdr import master_csv_rows
from tests.support.sipp import SipBed
from tests.support.testbed_lock import take_lock
from tests.support.wait import until_sync

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("PBX_IMAGE", "pbx_app:latest")
NAME = "pbx-image-test"
POLICY = """
employees:
  "101": {name: Ivan Petrov, ring_time: 2, on_no_answer: {action: forward, to: "102", announcement: standard}}
  "102": {name: Petr Ivanov, ring_time: 5}
"""

pytestmark = pytest.mark.image


def sh(*cmd: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}", pytrace=False)
    return done


def in_container(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("docker", "exec", NAME, *cmd, check=check)


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


def wait_until(what: str, ready, timeout: float) -> None:
    try:
        until_sync(ready, timeout, what, every=0.3)
    except TimeoutError as exc:
        logs = sh("docker", "logs", "--tail", "40", NAME, check=False)
        pytest.fail(f"{exc}; container log:\n{logs.stdout}{logs.stderr}", pytrace=False)


def image_script(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "scripts" / "image"), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image():
    """The image built from this tree; a dockerd this fixture had to start is stopped after."""
    had_dockerd = shutil.which("docker") is not None and subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    build = image_script("build", timeout=1200)
    try:
        if build.returncode != 0:
            pytest.fail(f"scripts/image build failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}", pytrace=False)
        yield IMAGE
    finally:
        if not had_dockerd:
            image_script("dockerd-stop", timeout=60)


@pytest.fixture(scope="module")
def container(image, tmp_path_factory):
    """The image running with host networking, holding the test bed's lock (both use
    127.0.0.1:5060 and :8088) with the test bed stopped."""
    lock = take_lock()
    subprocess.run([str(REPO / "scripts" / "testbed"), "stop"], capture_output=True)
    sh("docker", "rm", "-f", NAME, check=False)
    if answers(8088):
        pytest.fail("something else answers on 127.0.0.1:8088: stop it first", pytrace=False)
    policy = tmp_path_factory.mktemp("image") / "policy.yaml"
    policy.write_text(POLICY)
    policy.chmod(0o644)
    sh("docker", "run", "-d", "--rm", "--name", NAME, "--network", "host",
       "-v", f"{policy}:/etc/pbx_app/policy.yaml:ro", image)
    try:
        # Ready when Asterisk has a pbx_app ARI application connected (the app's websocket).
        wait_until("the app's ARI connection",
                   lambda: "pbx_app" in in_container("asterisk", "-rx", "ari show apps", check=False).stdout, 60)
        yield
    finally:
        logs = sh("docker", "logs", "--tail", "60", NAME, check=False)
        print(f"--- container log (tail) ---\n{logs.stdout}{logs.stderr}")
        sh("docker", "rm", "-f", NAME, check=False)
        lock.close()


def test_the_page_is_served_with_its_css(container):
    wait_until("the web page", lambda: answers(8090), 20)
    with urllib.request.urlopen("http://127.0.0.1:8090/login", timeout=5) as r:
        assert "Sign in" in r.read().decode()
    with urllib.request.urlopen("http://127.0.0.1:8090/ui/static/app.css", timeout=5) as r:
        assert r.headers.get_content_type() == "text/css"


async def test_forwarded_call_answered_with_history_and_cdr(container, tmp_path):
    sip = SipBed(tmp_path)
    try:
        employee = sip.phone("101", "ring_forever")
        colleague = sip.phone("102", "answer", answer_delay_ms=500)
        caller = sip.call("101", talk_ms=1500)
        assert await caller.wait(40) == 0, "the caller's scenario ended well (answered, talked, hung up)"
        await sip.finish()
    finally:
        sip.stop()
    assert caller.received(200), "the caller was answered"
    assert colleague.sent(200), "by 102"
    assert employee.received("CANCEL"), "101 stopped ringing when the call moved on"

    rows: list[dict] = []

    def history_has_the_call() -> bool:
        rows[:] = json.loads(in_container("pbx-app", "history", "--format", "json").stdout)
        return bool(rows)

    wait_until("the call in pbx-app history", history_has_the_call, 15)
    [row] = rows
    assert (row["employee"], row["status"], row["forwarded_from"]) == ("102", "answered", "101")
    assert row["what_happened"] == "no answer; forwarded to 102, answered by 102"
    assert row["employee_name"] == "Petr Ivanov", "names come from the policy mounted into the container"

    cdr: list[dict] = []

    def cdr_has_both_legs() -> bool:
        text = in_container("cat", "/var/log/asterisk/cdr-csv/Master.csv", check=False).stdout
        cdr[:] = master_csv_rows(text)
        return len(cdr) >= 2

    wait_until("two CDR rows in Master.csv", cdr_has_both_legs, 10)
    assert [(c["dst"], c["disposition"]) for c in cdr] == [("101", "NO ANSWER"), ("102", "ANSWERED")]
    assert cdr[0]["userfield"].split(":")[1:] == ["1", "employee", "101"]
    assert cdr[1]["userfield"].split(":")[1:3] == ["3", "forward"]
    assert cdr[1]["dstchannel"].startswith("PJSIP/102-")
    assert {c["userfield"].split(":")[0] for c in cdr} == {row["call_id"]}, "CDR and history name the same call"


def test_unit_tests_pass_on_the_image_python(image):
    done = image_script("unit", timeout=900)
    assert done.returncode == 0, f"scripts/image unit:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    assert re.search(r"^Python 3\.1[3-9]", done.stdout, re.MULTILINE), done.stdout[:500]
    assert re.search(r"\d+ passed", done.stdout), done.stdout[-500:]
