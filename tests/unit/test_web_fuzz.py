"""Issue 13, item 6: no input gives a 500. A seeded, bounded fuzz over the page and its API —
random and hostile bodies, headers, cookies and multipart forms, signed in (with the right CSRF
token, so the handlers run) and not — plus a few malformed raw HTTP requests."""

from __future__ import annotations

import asyncio
import json
import logging
import random

import pytest

from tests.unit.test_web_api import WebBed, announcements_env  # noqa: F401 (a fixture)

SEED = 13
REQUESTS = 600
STRINGS = ["", "103", "101", "sales", "../../etc/passwd", "%2e%2e%2f", "\u0000", "\ud800", "\udfff", "Анна",
           "x" * 5000, "<script>alert(1)</script>", "{{7*7}}", "'; DROP TABLE x; --", "\n\r\t", "😀" * 100,
           "upload-20260101-000000000000.wav", "ceo-greeting.wav", "forward", "voicemail", "drop", "tts", "custom"]
ROUTES = [("GET", "/"), ("GET", "/login"), ("POST", "/login"), ("POST", "/logout"), ("GET", "/employees/{s}"),
          ("GET", "/api/me"), ("GET", "/api/employees"), ("GET", "/api/employees/{s}/no-answer"),
          ("PUT", "/api/employees/{s}/no-answer"), ("PUT", "/api/employees/{s}/no-answer"),
          ("POST", "/api/announcements"), ("POST", "/api/announcements"), ("POST", "/api/announcements/tts"),
          ("POST", "/api/announcements/tts"), ("GET", "/api/announcements/{s}"), ("GET", "/api/sounds/standard/{s}")]
CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=XyZ",
                 "multipart/form-data", "text/plain", "application/json; charset=latin-1", "audio/wav", ""]


def any_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 4 else 5)
    if kind == 0:
        return rng.choice(STRINGS)
    if kind == 1:
        return rng.choice([0, -1, 1, 20, 2**70, 1.5, float("1e308")])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(0, 40)))
    if kind == 4:
        return rng.choice(STRINGS)[: rng.randrange(0, 10)]
    if kind in (5, 6):
        keys = ["version", "setting", "action", "to", "drop", "ring_time", "announcement", "kind", "file", "text",
                "language", rng.choice(STRINGS)]
        return {rng.choice(keys): any_value(rng, depth + 1) for _ in range(rng.randrange(0, 6))}
    return [any_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]


def setting_like(rng: random.Random, version: str) -> dict:
    return {"version": version if rng.random() < 0.7 else rng.choice(["x", None, 5]), "setting": {
        "action": rng.choice(["forward", "forward", "voicemail", "drop", any_value(rng)]),
        "to": rng.choice(["101", "102", "sales", any_value(rng)]),
        "ring_time": rng.choice([None, 20, 0, "20", any_value(rng)]),
        "drop": rng.choice(["busy", "message", any_value(rng)]),
        "announcement": rng.choice([{"kind": "tts", "file": any_value(rng), "text": any_value(rng)},
                                    {"kind": "custom", "file": rng.choice(STRINGS)}, any_value(rng)])}}


def multipart(rng: random.Random) -> bytes:
    name = rng.choice(['"file"', '"other"', 'file', '"fi\nle"', '""', '"' + "n" * 3000 + '"'])
    filename = rng.choice(['"a.wav"', '"a\nb.wav"', '"../../x"', '"\u00e9.wav"', "", '"' + "f" * 2000 + '"'])
    header = f"Content-Disposition: form-data; name={name}" + (f"; filename={filename}" if filename else "")
    extra = rng.choice(["", "Content-Type: audio/wav\r\n", "Content-Transfer-Encoding: base64\r\n",
                        "Content-Type: multipart/mixed; boundary=Inner\r\n", "X: " + "h" * 9000 + "\r\n"])
    content = rng.choice([b"RIFF\x24\x00\x00\x00WAVEfmt ", b"OggS" + bytes(rng.randrange(256) for _ in range(64)),
                          b"ID3", bytes(rng.randrange(256) for _ in range(rng.randrange(0, 2048)))])
    parts = [f"--XyZ\r\n{header}\r\n{extra}\r\n".encode("utf-8", "surrogatepass") + content + b"\r\n"
             for _ in range(rng.randrange(1, 4))]
    end = rng.choice([b"--XyZ--\r\n", b"", b"--XyZ", b"--Other--\r\n"])
    return b"".join(parts) + end


def body(rng: random.Random, version: str) -> bytes | None:
    kind = rng.randrange(7)
    if kind == 0:
        return None
    if kind == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 4096)))
    if kind == 2:
        return json.dumps(any_value(rng)).encode()
    if kind == 3:
        return json.dumps(setting_like(rng, version)).encode()
    if kind == 4:
        return rng.choice([b"[" * 20000, b'{"a":' * 5000, b'{"text": "\\ud800", "language": "en"}',
                           b'{"text": "hello", "language": "' + b"e" * 5000 + b'"}', b"\xff\xfe{}", b"null"])
    if kind == 5:
        return multipart(rng)
    fields = {"name": rng.choice(STRINGS), "password": rng.choice(STRINGS), "csrf_token": rng.choice(STRINGS)}
    return "&".join(f"{k}={v}" for k, v in fields.items()).encode("utf-8", "surrogatepass")


def headers(rng: random.Random, csrf: str) -> dict[str, str]:
    found = {}
    if rng.random() < 0.95:
        found["X-CSRF-Token"] = csrf if rng.random() < 0.85 else rng.choice(["guess", "é" * 10, "x" * 4000])
    if rng.random() < 0.5:
        found["Content-Type"] = rng.choice(CONTENT_TYPES)
    if rng.random() < 0.05:
        found["Origin"] = rng.choice(["http://evil.example", "null", "", "http://127.0.0.1"])
    if rng.random() < 0.1:
        found["X-Forwarded-For"] = rng.choice(["1.2.3.4", "garbage", ", , ,", "::1, 10.0.0.1"])
    if rng.random() < 0.1:
        found["Cookie"] = rng.choice(["pbx_session=" + "a" * 3000, "pbx_login=1.2.3", "=;=;", "pbx_session=\u00e9"])
    return found


@pytest.fixture
async def bed(tmp_path):
    b = WebBed(tmp_path, max_upload_bytes=200_000)
    yield b
    await b.close()


async def test_no_input_gives_a_500(bed, caplog):
    caplog.set_level(logging.ERROR)
    rng = random.Random(SEED)
    anna = await bed.login("anna")
    anonymous = await bed.client()
    version = (await anna.setting("103"))["version"]
    failures = []
    for i in range(REQUESTS):
        client = anna.client if rng.random() < 0.8 else anonymous
        method, path = rng.choice(ROUTES)
        if rng.random() < 0.1:
            method = rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH"])
        path = path.replace("{s}", "103" if rng.random() < 0.6 else rng.choice(STRINGS[:8] + ["x" * 200, "en"]))
        data = body(rng, version)
        if path.endswith("no-answer") and rng.random() < 0.5:
            data = json.dumps(setting_like(rng, version)).encode()
        sent = headers(rng, anna.csrf)
        try:
            response = await client.request(method, path, data=data, headers=sent, allow_redirects=False)
        except ValueError:  # the client itself refuses some of these (bad header text): nothing was sent
            continue
        if response.status >= 500 and response.status != 503:
            failures.append((i, method, path, sent, (data or b"")[:200], response.status, (await response.text())[:200]))
        elif response.status == 503:  # only ever for "busy" or a broken policy, with a JSON reason
            assert (await response.json())["code"] in ("busy", "policy_invalid")
    assert not failures, failures[:5]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("aiohttp")]
    assert not errors, [r.getMessage() for r in errors[:3]]


RAW = [
    b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad: a\nb\r\n\r\n",
    b"POST /api/announcements HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999\r\n\r\nname=a",
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: " + b"\xff" * 100 + b"\r\n\r\n",
    b"PUT /api/employees/103/no-answer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\n{\"a\"",
]


@pytest.mark.parametrize("raw", RAW, ids=range(len(RAW)))
async def test_malformed_http_never_gets_a_500(bed, raw):
    client = await bed.client()
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(raw)
    await writer.drain()
    if raw.endswith(b'{"a"') or raw.endswith(b"name=a"):
        writer.write_eof()
    status = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    code = int(status.split()[1]) if status else 400  # a closed connection is a refusal too
    assert code < 500, status
