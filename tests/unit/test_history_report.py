"""`pbx-app history`: the table a manager reads, the filters, and CSV/JSON exports — read from a
real SQLite journal, with rows still only in the spool shipped first."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time

import pytest

from pbx_app.cli import main
from pbx_app.history.events import CallEnded, CallStarted, LegEnded, LegStarted
from pbx_app.history.journal import SpooledJournal
from pbx_app.history.database import open_store
from tests.unit.test_journal_store import at, forwarded_call

POLICY = """
employees:
  "101": {name: Ivan Petrov}
  "102": {name: Petr Ivanov}
  "104": {name: Olga Kuznetsova, mailbox: "104@default"}
  "105": {name: Sergei Volkov}
departments:
  sales: {name: Sales, members: ["102", "105"]}
"""


def voicemail_call(call_id, start, left):
    return [
        CallStarted(call_id, at(start), "74950001122", "104", "ch-" + call_id),
        LegStarted(call_id, 1, at(start + 0.1), "employee", ("104",)),
        LegEnded(call_id, 1, at(start + 4), "no_answer"),
        LegStarted(call_id, 2, at(start + 4.1), "voicemail", ("104",)),
        LegEnded(call_id, 2, at(start + 15), "message_left" if left else "no_message"),
        CallEnded(call_id, at(start + 15), "voicemail", "message left" if left else "no message left"),
    ]


def dropped_call(call_id, start):
    return [
        CallStarted(call_id, at(start), "79161112233", "105", "ch-" + call_id),
        LegStarted(call_id, 1, at(start + 0.1), "employee", ("105",)),
        LegEnded(call_id, 1, at(start + 15.1), "no_answer"),
        CallEnded(call_id, at(start + 15.2), "dropped", "busy"),
    ]


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A journal with four calls: one in the database, the rest still only in the spool (the
    app was stopped before it shipped them)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    url = f"sqlite:///{tmp_path}/journal.db"
    spool = tmp_path / "spool"
    (tmp_path / "policy.yaml").write_text(POLICY)

    async def fill():
        journal = await SpooledJournal(spool, open_store(url)).start()
        for e in forwarded_call("fwd", 0):
            await journal.record(e)
        assert await journal.wait_shipped(5)
        await journal.close()
        (tmp_path / "away").write_text("")
        journal = await SpooledJournal(spool, open_store(f"sqlite:///{tmp_path}/away/x.db")).start()
        for e in [*voicemail_call("vm-left", 60, True), *voicemail_call("vm-none", 120, False), *dropped_call("drop", 180)]:
            await journal.record(e)
        await journal.close(timeout=0.2)

    asyncio.run(fill())
    yield ["history", "--database", url, "--spool", str(spool), "--policy", str(tmp_path / "policy.yaml"),
           "--from", "2026-11-29", "--to", "2026-11-29"]
    monkeypatch.delenv("TZ")
    time.tzset()


def run(capsys, args):
    assert main(args) == 0
    return capsys.readouterr().out


def test_the_table_shows_whom_each_call_counts_for(site, capsys):
    out = run(capsys, site)
    print(out)
    lines = out.splitlines()
    assert lines[0].split() == ["Started", "Caller", "Employee", "Status", "Waited", "Talked", "What", "happened"]
    assert "2026-11-29 09:00:00  79001234567  102 Petr Ivanov" in lines[2]
    assert "answered" in lines[2] and "8s" in lines[2] and "12s" in lines[2]
    assert "for 101 Ivan Petrov: no answer; forwarded to sales, answered by 102" in lines[2]
    assert "104 Olga Kuznetsova [Voicemail]  missed" in lines[3]
    assert "104 Olga Kuznetsova  " in lines[4] and "[Voicemail]" not in lines[4] and "voicemail, no message" in lines[4]
    assert "105 Sergei Volkov" in lines[5] and "missed" in lines[5] and "no answer; busy tone" in lines[5]
    assert lines[-1] == "4 calls, 3 missed"


def test_filters_by_employee_and_missed(site, capsys):
    out = run(capsys, [*site, "--employee", "104", "--missed"])
    assert out.count("104 Olga Kuznetsova") == 2 and out.splitlines()[-1] == "2 calls, 2 missed"
    out = run(capsys, [*site, "--employee", "101"])
    assert out.splitlines()[-1] == "0 calls, 0 missed", "the forwarded call counts for 102, who answered"
    out = run(capsys, [*site, "--missed"])
    assert "Petr Ivanov" not in out


def test_the_period_is_respected(site, capsys):
    base = site[:-4]
    out = run(capsys, [*base, "--from", "2026-11-29T09:01", "--to", "2026-11-29T09:02:30"])
    assert out.splitlines()[-1] == "2 calls, 2 missed"
    out = run(capsys, [*base, "--from", "2026-11-30", "--to", "2026-12-01"])
    assert out.splitlines()[-1] == "0 calls, 0 missed"


def test_csv_export(site, capsys):
    rows = list(csv.DictReader(io.StringIO(run(capsys, [*site, "--format", "csv"]))))
    assert [(r["employee"], r["status"], r["label"]) for r in rows] == [
        ("102", "answered", ""), ("104", "missed", "Voicemail"), ("104", "missed", ""), ("105", "missed", "")]
    assert rows[0]["forwarded_from"] == "101" and rows[0]["department_name"] == "Sales"
    assert rows[0]["employee_name"] == "Petr Ivanov" and rows[0]["started_at"] == "2026-11-29T09:00:00+00:00"
    assert rows[0]["waited_s"] == "8.0" and rows[0]["talked_s"] == "12.0"


def test_json_export(site, capsys):
    rows = json.loads(run(capsys, [*site, "--format", "json", "--missed"]))
    assert [(r["call_id"], r["label"]) for r in rows] == [("vm-left", "Voicemail"), ("vm-none", ""), ("drop", "")]
    assert rows[2]["talked_s"] is None and rows[2]["waited_s"] == 15.2


def test_a_bad_date_and_an_unreachable_database_say_what_is_wrong(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["history", "--from", "29.11.2026"])
    assert "use YYYY-MM-DD" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["history", "--database", f"sqlite:///{tmp_path}/file/j.db", "--spool", str(tmp_path / "none")]) == 1
    assert "cannot read the call journal" in capsys.readouterr().err
