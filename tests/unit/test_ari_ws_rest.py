"""Requests over the events websocket (PBX_ARI_REST=websocket) against a local server that plays
Asterisk's side: answers as RESTResponse frames among the events, HTTP while the socket is down,
and a request cut off by a drop is an error, never sent twice."""

import asyncio
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pbx_app.ari import AriClient, AriError
from pbx_app.ari.events import EventStream


@pytest.fixture
async def asterisk():
    state = {"frames": [], "http": [], "hold": False, "sockets": []}

    async def events(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        state["sockets"].append(ws)
        await ws.send_str(json.dumps({"type": "StasisStart", "channel": {"id": "c1"}}))
        async for msg in ws:
            frame = json.loads(msg.data)
            state["frames"].append(frame)
            if state["hold"]:
                await ws.close()  # the answer never comes: the socket drops
                break
            if frame["uri"] == "channels/gone/continue":
                answer = {"status_code": 404, "reason_phrase": "Not Found", "content_type": "application/json",
                          "message_body": json.dumps({"message": "Channel not found"})}
            elif frame["method"] == "GET":
                query = {q["name"]: q["value"] for q in frame.get("query_strings", [])}
                answer = {"status_code": 200, "content_type": "application/json",
                          "message_body": json.dumps({"variables": {"PBX_PLAN": query.get("variables", "")}})}
            else:
                answer = {"status_code": 204, "reason_phrase": "No Content", "message_body": ""}
            # An event between the request and its answer, as Asterisk may send one.
            await ws.send_str(json.dumps({"type": "ChannelUserevent", "eventname": "PBX", "channel": {"id": "c1"}}))
            await ws.send_str(json.dumps({"type": "RESTResponse", "request_id": frame["request_id"], **answer}))
        return ws

    async def http(request):
        state["http"].append((request.method, request.path))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/ari/events", events)
    app.router.add_route("*", "/ari/{tail:.*}", http)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    server.state = state
    yield server
    await server.close()


async def connected(server, hook=None):
    client = AriClient(str(server.make_url("")), "pbx_app", "s3cret", "pbx_app-a", timeout=2, rest_over_websocket=True)
    stream = EventStream(client, on_connect=hook)
    events: list[dict] = []

    async def read():
        async for event in stream:
            events.append(event)

    task = asyncio.create_task(read())
    await asyncio.wait_for(stream.connected.wait(), 5)
    for _ in range(100):
        if client.ws_rest.ready:
            break
        await asyncio.sleep(0.01)
    return client, events, task


async def test_requests_travel_as_frames_and_answers_never_reach_the_flows(asterisk):
    client, events, task = await connected(asterisk)
    try:
        assert await client.post("/channels/c1/variables", {"variables": {"PBX_RING": "PJSIP/101^20^x"}}) is None
        got = await client.get("/channels/c1/variables", variables="PBX_PLAN,PBX_CURSOR")
        assert got == {"variables": {"PBX_PLAN": "PBX_PLAN,PBX_CURSOR"}}
        post = asterisk.state["frames"][0]
        assert (post["method"], post["uri"]) == ("POST", "channels/c1/variables")
        assert json.loads(post["message_body"]) == {"variables": {"PBX_RING": "PJSIP/101^20^x"}}
        assert asterisk.state["http"] == []
        assert {e["type"] for e in events} == {"StasisStart", "ChannelUserevent"}
        with pytest.raises(AriError) as error:
            await client.post("/channels/gone/continue")
        assert (error.value.status, error.value.message) == (404, "Channel not found")
    finally:
        task.cancel()
        await client.close()


async def test_the_connect_hook_and_a_dropped_socket_use_http(asterisk):
    hook_requests = []

    async def hook():  # runs before answers are read from the socket: must not wait on it
        hook_requests.append(await client_box[0].get("/channels"))

    client_box: list[AriClient] = []
    client = AriClient(str(asterisk.make_url("")), "pbx_app", "s3cret", "pbx_app-a", timeout=2, rest_over_websocket=True)
    client_box.append(client)
    stream = EventStream(client, on_connect=hook)

    async def read():
        async for _ in stream:
            pass

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(stream.connected.wait(), 5)
        for _ in range(100):
            if hook_requests:
                break
            await asyncio.sleep(0.01)
        assert ("GET", "/ari/channels") in asterisk.state["http"]
        # A request whose answer is lost with the socket fails; it is not sent again over HTTP.
        asterisk.state["hold"] = True
        with pytest.raises(AriError) as error:
            await client.post("/events/claim", channelId="c1", application="pbx_app-a")
        assert error.value.status == 0
        assert ("POST", "/ari/events/claim") not in asterisk.state["http"]
    finally:
        task.cancel()
        await client.close()
