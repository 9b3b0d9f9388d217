"""Issue 11: past one machine. Kamailio spreads the clients' calls over two Asterisk nodes; two
engines serve both nodes; the journal, the CDR and the mailboxes are shared. Calls placed through
Kamailio must land on both nodes and leave the same history as on one node; a node stopped must
cost nothing to the calls that come after; a change saved on the web page must reach both
nodes' next calls.

The cluster uses the test bed's phones, so it runs under the test bed lock: this module borrows
the session's lock (the `asterisk` fixture), stops the single-node test bed for its own run and
starts it again afterwards for the tests that come later in the session."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import psycopg
import pytest
from psycopg.rows import dict_row

from pbx_app.history.rows import history_row
from tests.support.cluster import (Cluster, FrontSipBed, WebPage, calls_since, ended_since, node_of, now,
                                   running_cluster)
from tests.support.cluster import sip  # noqa: F401  (a fixture)
from tests.support.wait import until

POLICY = """
employees:
  "101": {name: Ivan Petrov, ring_time: 2, on_no_answer: {action: forward, to: "102", announcement: none}}
  "102": {name: Petr Ivanov, ring_time: 3}
  "103": {name: Anna Smirnova, ring_time: 2, on_no_answer: {action: forward, to: "104", announcement: none}}
  "104": {name: Olga Kuznetsova, ring_time: 2}
  "105": {name: Sergei Volkov, ring_time: 2, mailbox: "105@default", on_no_answer: {action: voicemail}}
"""
# Saved on the web page: 104 no longer gives up after ringing, the call goes on to 102.
FORWARD_TO_102 = {"action": "forward", "to": "102", "ring_time": 2, "announcement": {"kind": "none"}}


@pytest.fixture(scope="module")
def cluster(asterisk, tmp_path_factory):
    policy = tmp_path_factory.mktemp("cluster") / "policy.yaml"
    policy.write_text(POLICY)
    with running_cluster(asterisk, policy) as running:
        yield running


async def test_the_seed_calls_land_on_both_nodes_with_one_node_histories(cluster, sip):
    since = now()
    assert (await cluster.engines_health())[0]["ari_nodes"] == {"node1": True, "node2": True}
    sip.phone("101", "ring_forever")
    sip.phone("102", "answer", answer_delay_ms=500)
    sip.phone("103", "ring_forever")
    sip.phone("104", "ring_forever")
    sip.phone("105", "ring_forever")
    answered = sip.call("101", talk_ms=1500)
    missed = sip.call("103")
    voicemail = sip.call("105", audio_after_ms=13000, talk_ms=6000)  # speaks after the beep
    for caller in (answered, missed, voicemail):
        assert await caller.wait(60) == 0, f"{caller.name} did not complete"

    calls = {c.extension: c for c in await ended_since(cluster.database_url, since, 3)}
    assert {node_of(c) for c in calls.values()} == {"a", "b"}, "Kamailio used both nodes"
    rows = {ext: history_row(call) for ext, call in calls.items()}
    assert (rows["101"].employee, rows["101"].status, rows["101"].forwarded_from) == ("102", "answered", "101")
    assert rows["101"].what_happened == "no answer; forwarded to 102, answered by 102"
    assert (rows["103"].employee, rows["103"].status) == ("103", "missed")
    assert rows["103"].what_happened == "no answer; forwarded to 104, not answered (no answer); busy tone"
    assert (rows["105"].status, rows["105"].label) == ("missed", "Voicemail")
    assert rows["105"].what_happened == "no answer; voicemail, message left"
    # One mailbox whichever node took the call: both nodes count the message.
    for node in ("a", "b"):
        assert any(line.split()[:2] == ["default", "105"] and line.split()[-1] == "1"
                   for line in cluster.cli(node, "voicemail show users for default").splitlines()), node
    # Both nodes' CDR rows are in the one PostgreSQL, joined to the journal by the call id.
    cdr = await cdr_rows(cluster, [c.channel_id for c in calls.values()])
    assert {(r["linkedid"], r["userfield"].split(":")[0]) for r in cdr} == {(c.channel_id, c.call_id) for c in calls.values()}
    assert sorted((r["dst"], r["disposition"]) for r in cdr) == [
        ("101", "NO ANSWER"), ("102", "ANSWERED"), ("103", "NO ANSWER"), ("104", "NO ANSWER"),
        ("105", "ANSWERED"), ("105", "NO ANSWER")]


async def test_a_change_on_the_web_page_reaches_the_next_call_on_both_nodes(cluster, sip, tmp_path):
    page = WebPage(cluster)
    try:
        page.add_admin("boss", "the boss's long password", tmp_path)
        await page.login("boss", "the boss's long password")
        await page.save_no_answer("104", FORWARD_TO_102)
    finally:
        await page.close()
    await asyncio.sleep(2)  # the promise: every engine of every node has it within 2 s
    # The page wrote the YAML; the publisher put it in PostgreSQL; the engines follow it there.
    assert [h["policy_store"] for h in await cluster.engines_health()] == ["ok", "ok"]
    since = now()
    for n in range(1, 5):  # one call after another until each node has taken one
        sip.phone("104", "ring_forever")
        sip.phone("102", "answer", answer_delay_ms=200)
        caller = sip.call("104", talk_ms=300)
        assert await caller.wait(30) == 0
        calls = await ended_since(cluster.database_url, since, n)
        nodes = {node_of(c) for c in calls}
        if nodes == {"a", "b"}:
            break
    for call in calls:
        assert history_row(call).what_happened == "no answer; forwarded to 102, answered by 102", node_of(call)
    assert nodes == {"a", "b"}


def invite_straight_to_node(node_ip: str, source: str, forged_source: str, timeout: float = 5.0) -> int:
    """A client's INVITE sent to a node, not through Kamailio, with X-PBX-Source written by the
    sender itself; the node's final answer (0: none, the call went on)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        port = sock.getsockname()[1]
        tag, call_id, branch = uuid.uuid4().hex[:8], uuid.uuid4().hex, "z9hG4bK" + uuid.uuid4().hex[:12]
        head = (f"sip:102@{node_ip}:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {source}:{port};branch={branch}\r\n"
                f"From: <sip:79995550000@{source}>;tag={tag}\r\nTo: <sip:102@{node_ip}>\r\nCall-ID: {call_id}\r\n")
        sock.sendto((f"INVITE {head}CSeq: 1 INVITE\r\nContact: <sip:79995550000@{source}:{port}>\r\n"
                     f"Max-Forwards: 70\r\nX-PBX-Source: {forged_source}\r\nContent-Length: 0\r\n\r\n").encode(),
                    (node_ip, 5060))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                reply = sock.recv(65535).decode(errors="replace")
            except TimeoutError:
                break
            code = int(reply.split(" ", 2)[1])
            if code >= 200:
                to = next(line for line in reply.split("\r\n") if line.lower().startswith("to:"))
                ack = head.replace(f"To: <sip:102@{node_ip}>", to)  # the node's To, with its tag
                sock.sendto(f"ACK {ack}CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n".encode(),
                            (node_ip, 5060))
                return code
        return 0


async def test_a_forged_client_header_straight_to_a_node_is_refused(cluster, sip):
    # Issue 32: with X-PBX-Source: 127.0.0.2 an INVITE sent to node a entered as the Russian client.
    since = now()
    colleague = sip.phone("102", "answer", answer_delay_ms=200)
    from_outside = invite_straight_to_node("127.0.0.11", "127.0.0.2", "127.0.0.2")
    from_phones_net = invite_straight_to_node("127.0.0.11", "127.0.0.1", "127.0.0.4")
    assert (from_outside, from_phones_net) == (403, 403), "the ACL, then the front-only context"
    await asyncio.sleep(1)
    assert not colleague.received("INVITE") and await calls_since(cluster.database_url, since) == []
    # Through Kamailio, the same client's call goes on as before.
    caller = sip.call("102", talk_ms=300, source_ip="127.0.0.2")
    assert await caller.wait(30) == 0 and colleague.sent(200)
    [call] = await ended_since(cluster.database_url, since, 1)
    assert history_row(call).status == "answered"


async def test_node_a_stopped_new_calls_go_to_node_b(cluster, sip):
    stopped = time.monotonic()
    cluster.node("a", "stop")
    while "a" in cluster.active_nodes():
        assert time.monotonic() - stopped < 10, "Kamailio still sends calls to node a"
        await asyncio.sleep(0.2)
    # Phones register with the nodes that are up, as a phone fails over to its next registrar.
    sip.registrar, sip.more_registrars = FrontSipBed.more_registrars[0], ()
    since = now()
    # One phone for the four calls: a phone per call could start before the last one had left
    # its port (seen: "Unable to bind main socket").
    sip.phone("102", "answer", answer_delay_ms=100, calls=4)
    for n in range(4):
        caller = sip.call("102", talk_ms=300)
        assert await caller.wait(20) == 0, f"call {n + 1} after node a stopped was not answered"
    calls = await ended_since(cluster.database_url, since, 4)
    assert [(node_of(c), c.result) for c in calls] == [("b", "answered")] * 4
    health = await cluster.engines_health()
    assert all(h["status"] == "ok" and h["ari_nodes"] == {"node1": False, "node2": True} for h in health)
    # Node a back: the engines reconnect to it by themselves and Kamailio probes it back in.
    cluster.node("a", "start")
    await until(cluster.all_in_service, 15, "node a back in service, the engines on it")
    assert not [c for c in await calls_since(cluster.database_url, since) if c.result is None]


async def cdr_rows(cluster: Cluster, linkedids: list[str]) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        async with await psycopg.AsyncConnection.connect(cluster.database_url, row_factory=dict_row) as conn:
            cur = await conn.execute("SELECT linkedid, dst, disposition, userfield FROM cdr WHERE linkedid = ANY(%s)",
                                     (linkedids,))
            rows = await cur.fetchall()
        if len(rows) >= 6 or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)
