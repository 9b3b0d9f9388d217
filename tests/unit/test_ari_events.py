"""The ARI events websocket: clear errors when Asterisk is unreachable or refuses us, giving up
when told to, and reconnecting (with the on-connect hook) after a drop."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pbx_app.ari import AriClient
from pbx_app.ari.events import AriGaveUp, EventStream
from tests.support.net import free_port


async def first_event(stream: EventStream):
    async for event in stream:
        return event


async def test_unreachable_asterisk_is_named_and_given_up_on():
    url = f"http://127.0.0.1:{free_port()}"
    client = AriClient(url, "pbx_app", "secret", "pbx_app")
    stream = EventStream(client, min_backoff=0.01, give_up_after=0.1)
    with pytest.raises(AriGaveUp) as info:
        await asyncio.wait_for(first_event(stream), 5)
    assert f"cannot reach Asterisk's ARI at {url}: connection refused" in str(info.value)
    assert "gave up after" in str(info.value)
    await client.close()


async def test_wrong_password_is_named_and_retried():
    attempts = 0

    async def events(request):
        nonlocal attempts
        attempts += 1
        raise web.HTTPUnauthorized()

    webapp = web.Application()
    webapp.router.add_get("/ari/events", events)
    async with TestServer(webapp, host="127.0.0.1") as server:
        url = str(server.make_url("")).rstrip("/")
        client = AriClient(url, "pbx_app", "wrong", "pbx_app")
        stream = EventStream(client, min_backoff=0.01, give_up_after=0.2)
        with pytest.raises(AriGaveUp) as info:
            await asyncio.wait_for(first_event(stream), 5)
        await client.close()
    assert f"{url} refused user 'pbx_app': wrong ARI user or password (401)" in str(info.value)
    assert attempts >= 2, "it retried before giving up"
    assert stream.last_error and "401" in stream.last_error


async def test_reconnects_after_a_drop_and_calls_the_hook_each_time():
    connections = 0

    async def events(request):
        nonlocal connections
        connections += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "Hello", "n": connections})
        await ws.close()  # Asterisk went away
        return ws

    webapp = web.Application()
    webapp.router.add_get("/ari/events", events)
    hooks = 0

    async def on_connect():
        nonlocal hooks
        hooks += 1
        if hooks == 1:
            raise RuntimeError("a failing hook must not stop the stream")

    async with TestServer(webapp, host="127.0.0.1") as server:
        client = AriClient(str(server.make_url("")).rstrip("/"), "pbx_app", "x", "pbx_app")
        stream = EventStream(client, on_connect=on_connect, min_backoff=0.01)
        seen = []
        async for event in stream:
            seen.append(event["n"])
            if len(seen) == 3:
                break
        await client.close()
    assert seen == [1, 2, 3]
    assert hooks == 3 and stream.reconnects == 2


def test_limits_come_from_the_environment_with_clear_errors():
    from pbx_app.settings import Settings

    base = {"PBX_ARI_PASSWORD": "x"}
    s = Settings.from_env(base)
    assert (s.max_calls, s.ari_give_up_after, s.web_bind) == (500, None, "127.0.0.1:8090")
    s = Settings.from_env({**base, "PBX_MAX_CALLS": "0", "PBX_ARI_GIVE_UP_AFTER": "30"})
    assert (s.max_calls, s.ari_give_up_after) == (0, 30.0)
    with pytest.raises(SystemExit, match="PBX_MAX_CALLS='lots': not a number"):
        Settings.from_env({**base, "PBX_MAX_CALLS": "lots"})
    with pytest.raises(SystemExit, match="PBX_ARI_GIVE_UP_AFTER='-1': must not be negative"):
        Settings.from_env({**base, "PBX_ARI_GIVE_UP_AFTER": "-1"})
