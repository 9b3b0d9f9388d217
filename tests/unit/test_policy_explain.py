"""`pbx-app explain`: what a call would do and why, in words a sysadmin reads."""

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pbx_app.cli import main
from pbx_app.explain_command import parse_when

DATA = Path(__file__).resolve().parents[1] / "data" / "policies"
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "policy.example.yaml"


def explain(capsys, *args):
    code = main(["explain", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_profile_step_by_step(capsys):
    code, out, _ = explain(capsys, "103", "--caller", "79005550000", "--at", "2026-12-01 10:00", "--policy", str(EXAMPLE), "--offline")
    assert code == 0
    assert "Call from 79005550000 to 103 (Anna Smirnova), tue 2026-12-01 10:00 MSK" in out
    assert "Decided by: profile — the employee's own setting" in out
    assert "  - no answer: 103's own setting (forward to 105)" in out
    steps = [l.strip() for l in out.splitlines() if l.strip()[:2] in ("1.", "2.", "3.", "4.")]
    assert steps == [
        "1. The caller hears ringing. Ring 103 (Anna Smirnova) on PJSIP/103 for 25 s.",
        "2. Play the announcement /var/lib/pbx_app/sounds/anna-forward, as early media: the caller is not answered for it.",
        "3. Ring 105 (Sergei Volkov) on PJSIP/105 for 15 s.",
        "4. Busy tone: the call ends.",
    ]
    assert "If 103 is busy: the same as when 103 does not answer." in out


def test_crm_rule_wins_and_says_so(capsys):
    code, out, _ = explain(capsys, "101", "--caller", "+7 900 123-45-67", "--at", "2026-12-01 10:00", "--policy", str(EXAMPLE), "--offline")
    assert "Decided by: crm — the CRM rule for this caller" in out
    line = EXAMPLE.read_text().splitlines().index('    "+7 900 123-45-67":') + 2  # the rule's body, below its key
    assert f"CRM rule (static mapping, {EXAMPLE}:{line}): 103 is the responsible manager of +7 900 123-45-67" in out
    assert "CRM rule wins over 101's own setting (forward to 102): the call goes to 103 (Anna Smirnova)" in out
    assert "Ring 103 (Anna Smirnova) on PJSIP/103 for 25 s." in out


def test_absence_not_rung(capsys):
    code, out, _ = explain(capsys, "101", "--caller", "1", "--at", "2026-12-30 10:00", "--policy", str(EXAMPLE), "--offline")
    assert "Decided by: absence" in out
    assert "101 is absent (vacation 2026-12-28..2027-01-08; now wed 2026-12-30 10:00 Europe/Moscow): not rung" in out
    assert "1. The caller hears ringing; 101 is not rung (see why above)." in out
    assert "Ring department sales" in out


def test_schedule_out_of_hours(capsys):
    code, out, _ = explain(capsys, "101", "--caller", "1", "--at", "2026-12-06 10:00", "--policy", str(EXAMPLE), "--offline")
    assert "Decided by: schedule — the schedule: out of working hours" in out
    assert "out of working hours (mon-fri 09:00-18:00; sat 10:00-13:00, 14:00-16:00; now sun" in out


def test_unreachable_crm_webhook_is_reported_not_fatal(capsys):
    code, out, _ = explain(capsys, "104", "--caller", "1", "--at", "2026-12-01 10:00", "--policy", str(EXAMPLE))
    assert code == 0
    assert "CRM webhook is unreachable (cannot connect to 127.0.0.1:8900): the employee's profile decides" in out
    assert "Voicemail: the caller can leave a message in box 104@default." in out


def test_broken_policy_is_refused(capsys):
    code, out, err = explain(capsys, "101", "--caller", "1", "--policy", str(DATA / "forward_loop.yaml"))
    assert code == 1 and "forward_loop.yaml:5:41:" in err


def test_bad_time(capsys):
    code, _, err = explain(capsys, "101", "--caller", "1", "--at", "someday", "--policy", str(EXAMPLE), "--offline")
    assert code == 2 and "--at 'someday'" in err


MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 12, 2, 15, 30, tzinfo=MSK)  # a Wednesday


@pytest.mark.parametrize(
    "text, expected",
    [
        ("now", NOW),
        ("09:15", datetime(2026, 12, 2, 9, 15, tzinfo=MSK)),
        ("wed 09:15", datetime(2026, 12, 2, 9, 15, tzinfo=MSK)),
        ("mon 10:00", datetime(2026, 12, 7, 10, 0, tzinfo=MSK)),
        ("2026-12-31 23:59", datetime(2026, 12, 31, 23, 59, tzinfo=MSK)),
        ("2026-12-31T20:00+00:00", datetime(2026, 12, 31, 23, 0, tzinfo=MSK)),
    ],
)
def test_parse_when(text, expected):
    assert parse_when(text, MSK, NOW) == expected
