"""The ARI REST client against a local aiohttp server: one error type with Asterisk's words,
and the password never shown."""

import base64

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pbx_app.ari import AriClient, AriError


@pytest.fixture
async def asterisk_http():
    seen = []

    async def channels(request):
        seen.append(request)
        if request.headers.get("Authorization") != AriClient("x", "pbx_app", "s3cret", "a").headers["Authorization"]:
            return web.json_response({"message": "Authentication required"}, status=401)
        return web.json_response([{"id": "1.1", "name": "PJSIP/101-00000001"}])

    async def missing(request):
        return web.json_response({"message": "Channel not found"}, status=404)

    async def ring(request):
        seen.append(request)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/ari/channels", channels)
    app.router.add_delete("/ari/channels/{id}", missing)
    app.router.add_post("/ari/channels/{id}/ring", ring)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    server.seen = seen
    yield server
    await server.close()


async def test_get_returns_json(asterisk_http):
    ari = AriClient(str(asterisk_http.make_url("")), "pbx_app", "s3cret", "pbx_app")
    try:
        assert await ari.get("/channels") == [{"id": "1.1", "name": "PJSIP/101-00000001"}]
    finally:
        await ari.close()


async def test_error_carries_status_and_asterisks_message(asterisk_http):
    ari = AriClient(str(asterisk_http.make_url("")), "pbx_app", "s3cret", "pbx_app")
    try:
        with pytest.raises(AriError) as err:
            await ari.delete("/channels/1.1", reason="busy")
        assert (err.value.status, err.value.message) == (404, "Channel not found")
        assert "DELETE /channels/1.1" in str(err.value)
    finally:
        await ari.close()


async def test_wrong_password_is_a_401_error(asterisk_http):
    ari = AriClient(str(asterisk_http.make_url("")), "pbx_app", "wrong", "pbx_app")
    try:
        with pytest.raises(AriError) as err:
            await ari.get("/channels")
        assert err.value.status == 401
    finally:
        await ari.close()


async def test_no_content_and_params_are_encoded(asterisk_http):
    ari = AriClient(str(asterisk_http.make_url("")), "pbx_app", "s3cret", "pbx_app")
    try:
        assert await ari.post("/channels/1.1/ring", flag=True, skip=None, names=["a", "b"]) is None
        query = asterisk_http.seen[-1].query
        assert dict(query) == {"flag": "true", "names": "a,b"}
    finally:
        await ari.close()


async def test_unreachable_asterisk_is_status_0_naming_the_url():
    ari = AriClient("http://127.0.0.1:9", "pbx_app", "s3cret", "pbx_app")
    try:
        with pytest.raises(AriError) as err:
            await ari.get("/channels")
        assert err.value.status == 0 and "127.0.0.1:9" in err.value.message
    finally:
        await ari.close()


async def test_the_password_is_never_shown(asterisk_http, caplog):
    """Not in the client's repr (what a log line or a traceback prints), nor in any error:
    neither as typed nor as the Basic credentials it travels in."""
    secrets = ("s3cret", base64.b64encode(b"pbx_app:s3cret").decode())
    ari = AriClient(str(asterisk_http.make_url("")), "pbx_app", "s3cret", "pbx_app")
    unreachable = AriClient("http://127.0.0.1:9", "pbx_app", "s3cret", "pbx_app")
    shown = [repr(ari), str(ari), repr(unreachable)]
    try:
        with pytest.raises(AriError) as refused:
            await ari.delete("/channels/1.1")
        with pytest.raises(AriError) as unanswered:
            await unreachable.get("/channels")
    finally:
        await ari.close()
        await unreachable.close()
    shown += [str(refused.value), repr(refused.value), str(unanswered.value), repr(unanswered.value), caplog.text]
    assert "AriClient(" in shown[0], "the repr names the client"
    assert not [s for s in shown for secret in secrets if secret in s], shown
