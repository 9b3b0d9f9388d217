"""`pbx-app agi`'s /health tells whether FastAGI mode offers callbacks (issue 28), and the AMI
settings are checked at start."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from pbx_app.agi import AgiServer
from pbx_app.agi.callbacks import AgiCallbacks
from pbx_app.agi.service import CallCount, add_health
from pbx_app.history.events import MemoryJournal
from pbx_app.policy import parse_policy
from pbx_app.settings import Settings
from tests.support.net import free_port
from tests.support.wait import until

POLICY = parse_policy('employees: {"101": {name: Ivan}}')


class Policies:
    source = "<test>"

    def __call__(self):
        return POLICY


async def health_of(callbacks) -> dict:
    webapp = web.Application()
    calls = CallCount(MemoryJournal())
    add_health(webapp, AgiServer(Policies(), calls), calls, Policies(), "127.0.0.1:4573", callbacks)  # type: ignore[arg-type]
    async with TestClient(TestServer(webapp)) as client:
        response = await client.get("/health")
        return await response.json()


async def test_without_ami_health_says_the_callback_is_off():
    health = await health_of(None)
    assert health["callback"] == "off (no PBX_AMI_URL)"


async def test_with_ami_unreachable_health_says_the_callback_waits_for_it(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path}/journal.db", ami_url=f"tcp://127.0.0.1:{free_port()}",
                        ami_secret="s")
    callbacks = AgiCallbacks(settings, lambda: POLICY, MemoryJournal())
    callbacks.start()
    try:
        await until(lambda: callbacks.ami.state == "down", 5, "the refused connection is seen")
        health = await health_of(callbacks)
        assert (health["callback"], health["ami"]) == ("waiting for AMI (down)", "down")
    finally:
        await callbacks.stop()


def test_an_ami_url_without_a_secret_stops_the_start(tmp_path):
    with pytest.raises(SystemExit, match="no AMI secret"):
        Settings.from_env({"PBX_AMI_URL": "tcp://127.0.0.1:5038"}, need_ari=False)
    secret = tmp_path / "ami.secret"
    secret.write_text("s3cret\n")
    settings = Settings.from_env({"PBX_AMI_URL": "tcp://127.0.0.1:5038", "PBX_AMI_SECRET_FILE": str(secret)}, need_ari=False)
    assert (settings.ami_url, settings.ami_user, settings.ami_secret) == ("tcp://127.0.0.1:5038", "pbx_app", "s3cret")
    assert "s3cret" not in repr(settings)
