"""Real calls through the real Asterisk 22 test bed (scripts/testbed). These tests never skip:
if Asterisk cannot start, the run fails."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from pbx_app.ari import AriClient
from pbx_app.calls.engine import CallEngine
from pbx_app.history.events import CallEnded, MemoryJournal
from pbx_app.policy import Policy, parse_policy
from tests.support.sipp import SipBed
from tests.support.testbed_lock import take_lock
from tests.support.wait import until

REPO = Path(__file__).resolve().parents[2]
TESTBED = REPO / "scripts" / "testbed"
ARI_URL = os.environ.get("PBX_ARI_URL", "http://127.0.0.1:8088")
ARI_USER = os.environ.get("PBX_ARI_USER", "pbx_app")
ARI_PASSWORD = os.environ.get("PBX_ARI_PASSWORD", "pbx_app_secret")


def testbed(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(TESTBED), *args], capture_output=True, text=True, check=check, timeout=300)


def asterisk_root() -> Path:
    """The Asterisk root's folder on the host: its CDR, spool and logs live below it."""
    return Path(testbed("root").stdout.strip())


@pytest.fixture(scope="session")
def asterisk():
    """One Asterisk for the session, with the project's config freshly put in place. A lock
    keeps two test sessions on this machine from sharing it."""
    lock = take_lock()
    testbed("stop", check=False)
    started = testbed("start", check=False)
    if started.returncode != 0:
        pytest.fail(f"the Asterisk test bed did not start:\n{started.stderr}", pytrace=False)
    yield testbed
    testbed("stop", check=False)
    lock.close()


@pytest.fixture
async def ari(asterisk):
    client = AriClient(ARI_URL, ARI_USER, ARI_PASSWORD, "pbx_app-test")
    yield client
    await client.close()


async def leftovers(ari: AriClient, wait: float = 5.0) -> tuple[list, list]:
    """Channels and bridges still in Asterisk, after giving hangups a moment to finish."""
    left: list = [[], []]

    async def clean() -> bool:
        left[:] = [await ari.get("/channels"), await ari.get("/bridges")]
        return not any(left)

    try:
        await until(clean, wait, "", every=0.1)
    except TimeoutError:
        pass  # the caller asserts on what is left, naming it
    return left[0], left[1]


class RunningApp:
    def __init__(self, app: CallEngine, task: asyncio.Task, journal: MemoryJournal):
        self.app = app
        self.task = task
        self.journal = journal

    def ended(self):
        return [e for e in self.journal.events if isinstance(e, CallEnded)]

    async def wait_calls_ended(self, count: int = 1, timeout: float = 30.0):
        await until(lambda: len(self.ended()) >= count, timeout,
                    lambda: f"{len(self.ended())} of {count} calls ended: {self.journal.events}")
        return self.ended()


@pytest.fixture
async def start_app(ari):
    """start_app(policy_yaml) runs the Stasis app in this process against the real Asterisk.
    On teardown: every call's flow is over and no channel or bridge is left in Asterisk."""
    running: list[RunningApp] = []

    async def start(policy_yaml: "str | Policy | Callable[[], Policy]", **stasis_app_kwargs) -> RunningApp:
        # A Policy object lets a test run what `check` would refuse (e.g. a forward loop).
        policy = policy_yaml if isinstance(policy_yaml, Policy) else None
        if callable(policy_yaml):  # a policy holder: a reload (e.g. a web save) reaches new calls
            holder = policy_yaml
        else:
            policy = policy or parse_policy(policy_yaml, "<test policy>")
            holder = lambda: policy  # noqa: E731
        journal = MemoryJournal()
        app = CallEngine(ari, holder, journal=journal, **stasis_app_kwargs)  # e.g. crm=CrmDirectory()
        task = asyncio.create_task(app.run())
        await asyncio.wait_for(app.events.connected.wait(), 10)
        r = RunningApp(app, task, journal)
        running.append(r)
        return r

    yield start
    for r in running:
        await r.app.drain(5)
        r.task.cancel()
    channels, bridges = await leftovers(ari)
    assert not channels, f"channels left in Asterisk: {[c['name'] for c in channels]}"
    assert not bridges, f"bridges left in Asterisk: {bridges}"
    for r in running:
        assert not r.app.tasks, "call flows still running after the test"


@pytest.fixture
def sip(tmp_path):
    bed = SipBed(tmp_path)
    yield bed
    bed.stop()
