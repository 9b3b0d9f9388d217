"""Issue 25: the page at company size. A save rewrites only the employee's own lines (the rest
of the file stays byte for byte), is checked like the whole file, and the administrator finds
anyone by name, number or department a page at a time, in English and Russian."""

from __future__ import annotations

import re

import pytest

from pbx_app.web.settings.policy_file import PolicyFile, apply_setting
from pbx_app.web.settings.no_answer import NoAnswerSetting
from tests.unit.test_web_api import WebBed, forward


def company(n: int) -> str:
    people = "".join(
        f'  "{2000 + i}":\n'
        f"    name: {'Olga' if i % 2 else 'Ivan'} Worker{i}   # row {i}\n"
        f"    ring_time: 20\n"
        + (f'    on_no_answer: {{action: forward, to: "{2000 + (i + 1) % n}"}}\n' if i % 3 == 0 else "")
        + ("\n    # the next one is new\n" if i % 10 == 9 else "")
        for i in range(n))
    teams = "".join(f'  team{d}:\n    name: Team {"Alpha" if d == 1 else d}\n    members: [{", ".join(f"{chr(34)}{2000 + i}{chr(34)}" for i in range(d * 20, min(n, d * 20 + 20)))}]\n'
                    for d in range((n + 19) // 20))
    return (f"# The company\nsite:\n  ring_time: 30\n\nemployees:\n{people}"
            f"# Teams below\ndepartments:\n{teams}")


@pytest.fixture(autouse=True)
def announcements_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PBX_ANNOUNCEMENTS_DIR", str(tmp_path / "sounds"))


@pytest.fixture
async def bed(tmp_path):
    b = WebBed(tmp_path, policy=company(120))
    yield b
    await b.close()


def rows(html: str) -> int:
    return len(re.findall(r'class="person[ "]', html))


def changed_lines(old: str, new: str) -> list[int]:
    a, b = old.splitlines(), new.splitlines()
    return [i for i in range(min(len(a), len(b))) if a[i] != b[i]] + list(range(min(len(a), len(b)), max(len(a), len(b))))


def test_a_save_rewrites_only_the_employees_own_lines(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(company(120))
    before = path.read_text()
    file = PolicyFile(path)
    version = file.read().version("2050")
    saved = file.edit_now("2050", lambda entry: apply_setting(entry, NoAnswerSetting(action="voicemail", ring_time=25)), version)
    after = path.read_text()
    start = before.index('  "2050":')
    end = before.index('  "2051":')
    assert after[:start] == before[:start] and after.endswith(before[end:]), "every other byte stays"
    assert after[start:after.index('  "2051":')] == (
        '  "2050":\n    name: Ivan Worker50   # row 50\n    ring_time: 25\n    on_no_answer:\n      action: voicemail\n')
    assert saved.after.policy.employees["2050"].on_no_answer.kind == "voicemail"
    # The next save starts from what this one wrote, and finds the entries below it where they are.
    again = file.edit_now("2119", lambda entry: apply_setting(entry, NoAnswerSetting(action="forward", to="team1")), file.read().version("2119"))
    last = path.read_text()
    assert last.split("# Teams below")[1] == before.split("# Teams below")[1]
    assert '  "2119":\n    name: Olga Worker119   # row 119\n    on_no_answer:\n      action: forward\n      to: team1\n' in last
    assert again.after.policy.employees["2119"].on_no_answer.target == "team1"
    assert file._read_fresh().policy.employees["2050"].ring_time == 25, "the file reads back as saved"


def test_an_edit_that_breaks_the_policy_names_the_line_in_the_file(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(company(30))
    file = PolicyFile(path)
    from pbx_app.web.settings.policy_file import InvalidEdit
    with pytest.raises(InvalidEdit) as caught:
        file.edit_now("2012", lambda entry: entry.__setitem__("on_no_answer", {"action": "forward", "to": "9999"}),
                      file.read().version("2012"))
    key = company(30).splitlines().index('  "2012":') + 1
    # name, ring_time, then on_no_answer written as a block: action, to
    assert f"policy.yaml:{key + 5}:11: " in str(caught.value)
    assert "employees.2012.on_no_answer.to: unknown extension or department '9999'" in str(caught.value)


def test_a_flow_style_policy_is_still_saved_whole(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text('employees: {"101": {name: Ivan}, "102": {name: Petr}}\n')
    file = PolicyFile(path)
    file.edit_now("101", lambda entry: apply_setting(entry, NoAnswerSetting(action="voicemail")), file.read().version("101"))
    assert file._read_fresh().policy.employees["101"].on_no_answer.kind == "voicemail"


async def test_the_api_saves_one_employee_of_many_and_answers_409_on_a_stale_version(bed):
    boss = await bed.login("boss")
    first = await boss.setting("2007")
    assert (await boss.save("2007", forward("team1"), first["version"])).status == 200
    assert (await boss.save("2007", forward("2008"), first["version"])).status == 409
    assert bed.policy().employees["2007"].on_no_answer.target == "team1"


async def test_an_administrator_finds_an_employee_by_name_number_or_department(bed):
    boss = await bed.login("boss")
    found = await (await boss.get("/api/employees?q=olga%20worker11")).json()
    assert [e["extension"] for e in found["employees"]] == ["2011", "2111", "2113", "2115", "2117", "2119"][:found["total"]]
    assert found["total"] == 6 and found["employees"][0]["name"] == "Olga Worker11"
    by_number = await (await boss.get("/api/employees?q=2042")).json()
    assert [e["extension"] for e in by_number["employees"]] == ["2042"]
    team = await (await boss.get("/api/employees?q=alpha")).json()
    assert [e["extension"] for e in team["employees"]] == [str(2020 + i) for i in range(20)]


async def test_the_list_comes_a_page_at_a_time(bed):
    boss = await bed.login("boss")
    first = await (await boss.get("/api/employees")).json()
    assert (first["total"], first["pages"], len(first["employees"])) == (120, 3, 50)
    last = await (await boss.get("/api/employees?page=3")).json()
    assert [e["extension"] for e in last["employees"]] == [str(2100 + i) for i in range(20)]
    small = await (await boss.get("/api/employees?per_page=10&page=2")).json()
    assert [e["extension"] for e in small["employees"]] == [str(2010 + i) for i in range(10)]


@pytest.mark.parametrize("query", ["q=" + "x" * 101, "page=0", "page=abc", "per_page=101", "page=9999999"])
async def test_search_arguments_are_bounded(bed, query):
    boss = await bed.login("boss")
    response = await boss.get(f"/api/employees?{query}")
    assert response.status == 400
    assert (await response.json())["error"].split(":")[0] in ("q", "page", "per_page")


async def test_an_employee_finds_only_themselves(bed, tmp_path):
    bed.web.users.add("ivan", "employee", "2000", "correct horse battery")
    ivan = await bed.login("ivan")
    found = await (await ivan.get("/api/employees?q=worker")).json()
    assert [e["extension"] for e in found["employees"]] == ["2000"] and found["total"] == 1


async def test_the_page_shows_one_page_and_a_search_box_in_russian_too(bed):
    boss = await bed.login("boss")
    html = await (await boss.get("/employees/2000")).text()
    assert rows(html) == 50 and 'id="people-q"' in html and "Page 1 of 3" in html
    html = await (await boss.get("/employees/2000?q=olga&page=2")).text()
    names = re.findall(r'<span class="person-name">([^<]+)</span>', html)
    assert len(names) == 10 and all(n.startswith("Olga Worker") for n in names) and "Page 2 of 2" in html
    ru = await (await boss.client.get("/employees/2000?q=nobody-at-all", headers={"Accept-Language": "ru"})).text()
    assert "Имя, номер или отдел" in ru and "Никого не найдено" in ru
    assert '<p class="muted people-none" id="people-none">' in ru, "shown, not hidden"


async def test_a_big_company_profile_carries_close_colleagues_and_finds_the_others(tmp_path):
    bed = WebBed(tmp_path, policy=company(400))
    try:
        anna = await bed.login("boss")
        view = await anna.setting("2003")
        ids = {c["id"] for c in view["targets"]["colleagues"]}
        assert view["targets"]["complete"] is False
        assert "2004" in ids, "the colleague 2003 forwards to"
        assert set(str(2000 + i) for i in range(20)) - {"2003"} <= ids, "the team"
        assert "2399" not in ids and len(ids) < 40
        found = await (await anna.get("/api/employees/2003/colleagues?q=worker399")).json()
        assert found == {"colleagues": [{"id": "2399", "name": "Olga Worker399"}]}
        assert (await anna.get("/api/employees/2003/colleagues?q=" + "x" * 101)).status == 400
        bed.web.users.add("ivan", "employee", "2000", "correct horse battery")
        ivan = await bed.login("ivan")
        assert (await ivan.get("/api/employees/2003/colleagues?q=worker")).status == 403
        own = await (await ivan.get("/api/employees/2000/colleagues?q=worker399")).json()
        assert own["colleagues"][0]["id"] == "2399", "an employee finds colleagues to forward to"
    finally:
        await bed.close()
