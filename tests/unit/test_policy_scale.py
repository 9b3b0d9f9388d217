"""Issue 25: a company-sized policy. libyaml reads it with the meanings the sysadmin wrote
(YAML 1.2, as before), an engine puts a new one in force from a child process without holding
its event loop, and frees the old one only once no call holds it."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import weakref

import pytest

from pbx_app.policy import analyse_file, analyse_policy, parse_policy
from pbx_app.policy import swap
from pbx_app.policy.published import policy_text
from pbx_app.policy.store import PolicyStore
from pbx_app.web.settings.policy_file import InvalidEdit, PolicyFile, apply_setting
from pbx_app.web.settings.no_answer import NoAnswerSetting

GOOD = 'employees:\n  "101": {ring_time: 20, on_no_answer: {action: forward, to: "102"}}\n  "102": {ring_time: 20}\n'


def write(path, text):
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_plain_words_and_numbers_mean_what_yaml_1_2_says():
    policy = parse_policy(
        'employees:\n'
        '  "101":\n'
        '    name: no\n'          # YAML 1.1 would make this false
        '    language: on\n'
        '    ring_time: 010\n'    # ten, not octal eight
        '    schedule:\n'
        '      mon: 10:00-13:00\n'
        '    absences:\n'
        '      - {from: 2026-12-28, to: "2027-01-08 18:00"}\n')
    ivan = policy.employees["101"]
    assert (ivan.name, ivan.language, ivan.ring_time) == ("no", "on", 10)
    assert ivan.schedule.describe() == "mon 10:00-13:00"
    assert str(ivan.absences[0].start) == "2026-12-28"


def test_duplicates_and_bad_values_still_name_line_and_column():
    analysis = analyse_policy('employees:\n  "101": {ring_time: 20}\n  101: {ring_time: 2000}\n  "101": {}\n', "p.yaml")
    messages = [str(p) for p in analysis.errors]
    assert "p.yaml:3:3: employees: duplicate extension '101' (already defined at line 2, column 3); each may appear once" in messages
    assert "p.yaml:4:3: employees: duplicate extension '101' (already defined at line 2, column 3); each may appear once" in messages
    bad = analyse_policy('employees:\n  "101":\n    ring_time: 2000\n', "p.yaml")
    assert str(bad.errors[0]).startswith("p.yaml:3:16: employees.101.ring_time: 2000 is out of range")


def test_text_libyaml_refuses_gets_the_hint_a_sysadmin_understands():
    analysis = analyse_policy('employees:\n  "101":\n\tname: Ivan\n', "p.yaml")
    assert analysis.errors and str(analysis.errors[0]).startswith("p.yaml:3:1: not valid YAML: a tab: indent with spaces only")


async def ticking(stalls: list[float]):
    while True:
        t = time.perf_counter()
        await asyncio.sleep(0.001)
        stalls.append(time.perf_counter() - t)


def test_anchors_and_merge_keys_read_as_written_and_a_self_alias_is_refused_with_its_place():
    policy = parse_policy(
        'site: &usual {ring_time: 25, language: ru}\n'
        'employees:\n'
        '  "101": {<<: *usual, name: Ivan}\n'
        '  "102": {<<: *usual, name: Petr}\n')
    assert [(e.name, e.ring_time, e.language) for e in policy.employees.values()] == [("Ivan", 25, "ru"), ("Petr", 25, "ru")]
    analysis = analyse_policy('employees: &all\n  "101": {ring_time: 20}\n  "102": *all\n', "p.yaml")
    assert analysis.errors and str(analysis.errors[0]).startswith("p.yaml:")


def test_a_control_character_is_an_error_at_its_place_not_a_crash():
    analysis = analyse_policy('employees:\n  "101":\n    name: Iv\x00an\n', "p.yaml")
    assert [str(p) for p in analysis.errors] == [
        "p.yaml:3:13: not valid YAML: the character #x0000 cannot be in it (special characters are not allowed)"]


async def test_a_reload_is_read_in_a_child_and_a_broken_one_is_refused_with_its_place(tmp_path, caplog):
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    store = PolicyStore(path)
    first = store()
    write(path, GOOD.replace('to: "102"', "action: voicemail").replace("action: forward, ", ""))
    assert await store.reload_off_loop() is True
    assert store().employees["101"].on_no_answer.kind == "voicemail" and store() is not first
    write(path, GOOD + '  "103": {on_no_answer: {action: forward, to: "199"}}\n')
    assert await store.reload_off_loop() is False
    assert store().employees["101"].on_no_answer.kind == "voicemail", "the last good policy stays"
    assert "policy.yaml:4:47: employees.103.on_no_answer.to: unknown extension" in caplog.text


async def test_a_child_that_cannot_run_is_a_refusal_not_a_crash(tmp_path, monkeypatch, caplog):
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    store = PolicyStore(path)
    write(path, GOOD.replace("ring_time: 20}\n", "ring_time: 25}\n"))
    python = sys.executable
    monkeypatch.setattr(swap.sys, "executable", str(tmp_path / "no-python"))
    assert await store.reload_off_loop() is False
    assert "policy.yaml:1:1: cannot check the policy: cannot start" in caplog.text
    assert store().employees["102"].ring_time == 20, "the last good policy stays"
    monkeypatch.setattr(swap.sys, "executable", python)
    assert await store.reload_off_loop() is True and store().employees["102"].ring_time == 25


async def test_an_old_policy_is_taken_apart_only_when_no_call_holds_it(monkeypatch):
    monkeypatch.setattr(swap, "RETIRE_POLL", 0.01)
    text = "employees:\n" + "".join(f'  "{100 + i}": {{ring_time: 20}}\n' for i in range(1000))
    old = parse_policy(text)
    held_by_a_call = old
    swap.retire(old)
    del old
    await asyncio.sleep(0.1)
    assert len(held_by_a_call.employees) == 1000, "a call in progress keeps its whole policy"
    employees = held_by_a_call.employees
    del held_by_a_call  # the call ended
    for _ in range(200):
        if not employees:
            break
        await asyncio.sleep(0.01)
    # The table itself is still referenced here, so it is left alone: only sole owners take apart.
    assert len(employees) == 1000


async def test_an_unheld_policy_is_freed_a_chunk_per_loop_turn(monkeypatch):
    monkeypatch.setattr(swap, "RETIRE_POLL", 0.01)
    text = "employees:\n" + "".join(f'  "{100 + i}": {{ring_time: 20}}\n' for i in range(1000))
    policy = parse_policy(text)
    first, last = weakref.ref(policy.employees["100"]), weakref.ref(policy.employees["1099"])
    swap.retire(policy)
    del policy
    chunked = False
    for _ in range(500):
        if first() is None:
            break
        chunked = chunked or last() is None
        await asyncio.sleep(0)
    assert first() is None and last() is None, "the old policy is freed"
    assert chunked, "a turn of the loop came between the first entries freed and the last"


# ---- a policy kept as a directory ---------------------------------------------------------------

def company_folder(root):
    (root / "employees").mkdir(parents=True)
    (root / "departments").mkdir()
    (root / "site.yaml").write_text("site:\n  ring_time: 30\n")
    (root / "employees" / "101.yaml").write_text(
        'employees:\n  "101":\n    name: Ivan   # the boss\n    on_no_answer: {action: forward, to: sales}\n')
    (root / "employees" / "102.yaml").write_text('employees:\n  "102":\n    name: Petr\n')
    (root / "departments" / "sales.yaml").write_text('departments:\n  sales:\n    members: ["102"]\n')
    (root / "crm.yaml").write_text('crm:\n  clients:\n    "79001234567": {manager: "101"}\n')
    return root


def test_a_directory_reads_as_one_policy_and_each_error_names_its_file(tmp_path):
    folder = company_folder(tmp_path / "policy")
    good = analyse_file(folder)
    assert good.ok and set(good.policy.employees) == {"101", "102"}
    assert good.policy.crm.clients["79001234567"].source == f"static mapping, {folder}/crm.yaml:3"
    (folder / "employees" / "103.yaml").write_text('employees:\n  "103":\n    name: Anna\n  "101":\n    name: Again\n')
    (folder / "departments" / "sales.yaml").write_text('departments:\n  sales:\n    members: ["102", "104"]\n')
    (folder / "crm.yaml").write_text("site:\n  ring_time: 20\n")
    errors = [str(p) for p in analyse_file(folder).errors]
    assert errors == [
        f"{folder}/crm.yaml:1:1: 'site' does not belong in this file: crm.yaml holds 'crm' only",
        f"{folder}/departments/sales.yaml:3:22: departments.sales.members: unknown extension '104' (not under employees)",
        f"{folder}/employees/103.yaml:4:3: employees: duplicate extension '101' (already defined at "
        f"{folder}/employees/101.yaml:2:3); each may appear once",
    ]


async def test_an_engine_follows_a_hand_edit_of_one_file_in_the_directory(tmp_path):
    folder = company_folder(tmp_path / "policy")
    store = PolicyStore(folder)
    assert not store.changed()
    write(folder / "employees" / "102.yaml", 'employees:\n  "102":\n    name: Petr\n    ring_time: 15\n')
    assert store.changed()
    assert await store.reload_off_loop() is True
    assert store().employees["102"].ring_time == 15


def test_a_published_directory_is_the_same_policy(tmp_path):
    folder = company_folder(tmp_path / "policy")
    published = parse_policy(policy_text(folder), "published policy v1")
    assert published.employees["101"].on_no_answer.target == "sales"
    assert published.crm.clients["79001234567"].manager == "101"


def test_a_page_save_rewrites_only_the_employees_file(tmp_path):
    folder = company_folder(tmp_path / "policy")
    others = {p: p.read_text() for p in folder.rglob("*.yaml") if p.name != "101.yaml"}
    file = PolicyFile(folder)
    file.edit_now("101", lambda entry: apply_setting(entry, NoAnswerSetting(action="voicemail", ring_time=25)), file.read().version("101"))
    assert (folder / "employees" / "101.yaml").read_text() == (
        'employees:\n  "101":\n    name: Ivan   # the boss\n    ring_time: 25\n    on_no_answer: {action: voicemail}\n')
    assert {p: p.read_text() for p in others} == others
    assert analyse_file(folder).policy.employees["101"].ring_time == 25
    with pytest.raises(InvalidEdit, match=r"employees/102.yaml:6:11: employees.102.on_no_answer.to: unknown extension"):
        file.edit_now("102", lambda e: e.__setitem__("on_no_answer", {"action": "forward", "to": "999"}),
                      file.read().version("102"))
