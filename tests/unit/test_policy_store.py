"""Hot reload: a good file applies to new calls, a broken one is refused with its file:line:col
logged and the last good policy stays; a call keeps the policy it started with."""

import asyncio
import logging
import os

import pytest

from pbx_app.policy import PolicyError
from pbx_app.policy.store import PolicyStore
from pbx_app.testing import FakeAsterisk
from tests.support.fake_calls import engine_on
from tests.support.wait import until

GOOD = 'employees:\n  "101": {ring_time: 5, on_no_answer: {action: forward, to: "102"}}\n  "102": {ring_time: 5}\n  "103": {ring_time: 5}\n'
NEXT = GOOD.replace('to: "102"', 'to: "103"')
# Would send 101's calls to 103 if it were taken; line 4 has an unknown target.
BROKEN = NEXT + '  "104": {on_no_answer: {action: forward, to: "199"}}\n'


def write(path, text):
    # A new mtime even on a coarse clock: the poll compares mtime, size and inode.
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def forward_target(store):
    return store().employees["101"].on_no_answer.target


def test_start_refuses_a_broken_file(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(BROKEN)
    with pytest.raises(PolicyError, match=r"policy.yaml:5:47: employees.104.on_no_answer.to: unknown extension"):
        PolicyStore(path)


def test_reload_keeps_the_last_good_policy_and_logs_where(tmp_path, caplog):
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    store = PolicyStore(path)
    write(path, BROKEN)
    with caplog.at_level(logging.ERROR):
        assert store.reload() is False
    assert forward_target(store) == "102"
    assert f"{path}:5:47: employees.104.on_no_answer.to: unknown extension or department '199'" in caplog.text
    assert "the last good policy stays in force" in caplog.text
    assert store.last_error is not None and store.reloads == {"ok": 0, "refused": 1}
    write(path, NEXT)
    assert store.reload() is True
    assert forward_target(store) == "103" and store.last_error is None and store.reloads["ok"] == 1


def test_deleted_file_keeps_the_policy(tmp_path, caplog):
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    store = PolicyStore(path)
    path.unlink()
    assert store.reload() is False
    assert forward_target(store) == "102"
    assert "cannot read the policy" in caplog.text


async def test_watch_picks_up_changes_by_mtime(tmp_path, caplog):
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    store = PolicyStore(path)
    polls = 0
    looks = store.changed

    def counted_look():
        nonlocal polls
        polls += 1
        return looks()

    store.changed = counted_look
    watcher = asyncio.create_task(store.watch(interval=0.02))
    try:
        write(path, BROKEN)
        await until(lambda: store.last_error is not None, 3, "the broken file is refused")
        assert forward_target(store) == "102"
        refused_at = polls
        await until(lambda: polls >= refused_at + 3, 3, "three more polls of the unchanged broken file")
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and store.reloads["refused"] == 1, "logged once, not every poll"
        write(path, NEXT)
        await until(lambda: forward_target(store) == "103", 3, "the fixed file is taken")
    finally:
        watcher.cancel()


async def test_a_call_in_flight_keeps_its_policy_and_the_next_call_gets_the_last_good_one(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    store = PolicyStore(path)
    fake = FakeAsterisk(phones={"PJSIP/101": "rings", "PJSIP/102": "answer", "PJSIP/103": "answer"})
    engine_on(fake, store)

    first = fake.new_call("101")
    await fake.settle()  # the call has decided its plan and 101 rings
    write(path, NEXT)
    assert store.reload()
    fake.ring_ends.set()
    await fake.settle()
    write(path, BROKEN)
    assert not store.reload()
    second = fake.new_call("101")
    await fake.settle()
    write(path, NEXT)  # fixed: the next call follows it
    assert store.reload()
    third = fake.new_call("101")
    await fake.settle()

    def rung(channel):
        return [a[1] for a in fake.actions_for(channel) if a[0] == "dial"]

    assert rung(first) == [("PJSIP/101",), ("PJSIP/102",)], "decided before the reload"
    assert rung(second) == [("PJSIP/101",), ("PJSIP/103",)], "the last good policy, not the broken one"
    assert rung(third) == [("PJSIP/101",), ("PJSIP/103",)]
