"""`pbx-app check` on broken policies: every error at its exact line and column, saying what was
expected; warnings for legal but suspicious settings; exit 1 only on errors."""

from pathlib import Path

import pytest

from pbx_app.cli import main
from pbx_app.policy import PolicyError, analyse_file, load_policy, parse_policy

DATA = Path(__file__).resolve().parents[1] / "data" / "policies"
REPO = Path(__file__).resolve().parents[2]

# file → [(line, column, words the message must contain)], errors in file order
ERRORS = {
    "unknown_reference.yaml": [
        (5, 11, "employees.101.on_no_answer.to: unknown extension or department '199'"),
        (9, 22, "departments.sales.members: unknown extension '188'"),
    ],
    "forward_to_self.yaml": [(3, 36, "employees.101.on_busy.to: 101 forwards to themselves")],
    "forward_loop.yaml": [
        (5, 41, "forward loop 101 → 102 → 101: with site.max_forwards 2 a call comes back to someone already rung"),
    ],
    "department_loop.yaml": [(5, 41, "forward loop 101 → sales → 102 → 101")],
    "missing_announcement.yaml": [
        (6, 69, "employees.101.on_no_answer.announcement.file: announcement file 'goodbye.wav' not found in"),
    ],
    "ring_time_range.yaml": [
        (2, 14, "site.ring_time: 0 is out of range, expected 1..600 seconds"),
        (5, 16, "employees.101.ring_time: 601 is out of range, expected 1..600 seconds"),
        (7, 16, "employees.102.ring_time: expected a whole number of seconds, got str 'twenty'"),
        (9, 47, "departments.sales.ring_time: -5 is out of range"),
    ],
    "duplicate_extension.yaml": [(6, 3, "employees: duplicate extension '101' (already defined at line 2, column 3)")],
    "bad_time_ranges.yaml": [
        (4, 17, "unknown time zone 'Europe/Mosco' (expected an IANA name such as Europe/Moscow)"),
        (5, 16, "employees.101.schedule.mon-fri: '9-18' is not a time range, expected HH:MM-HH:MM"),
        (6, 28, "employees.101.schedule.sat: '25:00-26:00' is not a time range"),
        (7, 12, "employees.101.schedule.sun: '09:00-09:00' is not a time range"),
        (10, 7, "'mo-fr' is not a day or a range of days"),
        (12, 32, "employees.102.absences[1].to: the absence ends (2026-12-10) before it starts (2026-12-20)"),
        (13, 16, "employees.102.absences[2].from: str 'next monday' is not a date, expected YYYY-MM-DD"),
    ],
    "not_yaml.yaml": [(4, 4, "not valid YAML: the indentation of this line does not match the lines above it")],
    "crm_errors.yaml": [
        (5, 35, "crm.clients.+7 900 123-45-67.manager: unknown extension '107'"),
        (6, 5, "the same number as '+7 900 123-45-67'"),
        (7, 67, "forwards to the responsible manager 101 who was just rung"),
        (9, 10, "crm.webhook.url: 'crm.local/lookup' is not an http:// or https:// address"),
        (10, 17, "crm.webhook.timeout_ms: 0 is out of range, expected 10..10000 milliseconds"),
    ],
    "notice_errors.yaml": [
        (2, 18, "employees.101.email: 'ivan at example' is not an e-mail address"),
        (2, 59, "employees.101.voicemail_to: unknown extension or department '199'"),
        (2, 66, "employees.101.voicemail_to[2]: 'a b@example.com' is not an e-mail address"),
    ],
    "unknown_keys.yaml": [
        (2, 3, "site: unknown key 'ringtime' (expected one of announcements_dir, callback_route, language,"),
        (5, 28, "employees.101.on_no_answer.action: 'forwad' is not one of drop, forward, voicemail"),
        (6, 5, "employees.101: unknown key 'vacation'"),
    ],
}

WARNINGS = {
    "warnings.yaml": [
        (5, 16, "employees.101.ring_time: 3 s is hardly time to pick a phone up"),
        (6, 41, "employees.101.on_no_answer.to: 102 then rings for 120 s"),
        (12, 5, "departments.solo.members: only one member (101)"),
    ],
    "missing_announcement.yaml": [
        (6, 41, "102 then rings for 120 s"),
        (8, 41, "101 then rings for 120 s"),
        (8, 69, "employees.102.on_no_answer.announcement: the text is not rendered to a file yet; callers hear the standard announcement"),
    ],
}


def run_check(capsys, *args):
    code = main(["check", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_each_error_names_file_line_and_column(capsys, name):
    path = DATA / name
    code, out, err = run_check(capsys, path)
    assert code == 1
    errors = [l for l in err if l.startswith("error: ")]
    assert len(errors) == len(ERRORS[name]), "\n".join(err)
    for line, (row, col, words) in zip(errors, ERRORS[name]):
        assert line.startswith(f"error: {path}:{row}:{col}: "), line
        assert words in line, line
    assert err[-1].startswith(f"{path}: {len(errors)} error(s)")


@pytest.mark.parametrize("name", sorted(WARNINGS))
def test_warnings_name_their_place_too(capsys, name):
    path = DATA / name
    code, out, err = run_check(capsys, path)
    warnings = [l for l in err if l.startswith("warning: ")]
    assert len(warnings) == len(WARNINGS[name]), "\n".join(err)
    for line, (row, col, words) in zip(warnings, WARNINGS[name]):
        assert line.startswith(f"warning: {path}:{row}:{col}: "), line
        assert words in line, line


def test_warnings_alone_pass_unless_strict(capsys):
    code, out, _ = run_check(capsys, DATA / "warnings.yaml")
    assert code == 0 and "OK (3 employees, 1 departments" in out and "3 warning(s)" in out
    assert run_check(capsys, DATA / "warnings.yaml", "--strict")[0] == 1


def test_the_shipped_policies_are_clean(capsys, tmp_path):
    (tmp_path / "anna-forward.wav").write_bytes(b"RIFF")
    for name in ("policy.yaml", "policy.example.yaml"):
        code, out, err = run_check(capsys, REPO / "config" / name, "--announcements", tmp_path)
        assert (code, err) == (0, []), err
        assert "0 warning(s)" in out


def test_present_announcement_file_passes_in_any_format(tmp_path):
    (tmp_path / "hello.gsm").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    text = 'employees:\n  "101": {on_no_answer: {action: forward, to: "102", announcement: {file: hello}}}\n  "102": {ring_time: 20}\n'
    assert parse_policy(text, announcements_dir=tmp_path).employees["101"].on_no_answer.announcement.file == "hello"
    with pytest.raises(PolicyError, match=r"<policy>:2:75: .*announcement file 'hello' not found in .*empty"):
        parse_policy(text, announcements_dir=tmp_path / "empty")


def test_missing_folder_is_a_warning_not_an_error(tmp_path):
    text = 'employees:\n  "101": {announcement: {file: hello}}\n'
    analysis = analyse_file_text(tmp_path, text, announcements=tmp_path / "nowhere")
    assert analysis.ok
    [warning] = analysis.warnings
    assert "cannot check announcement files: the folder" in warning.message and (warning.line, warning.column) == (2, 32)


def analyse_file_text(tmp_path, text, announcements=None):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return analyse_file(path, announcements)


def test_text_only_announcement_plays_the_standard_one():
    policy = parse_policy('employees:\n  "101": {on_no_answer: {action: forward, to: "102", announcement: {text: Hold on}}}\n  "102": {}\n')
    from pbx_app.sounds import FORWARD_NOTICE, announcement_sound

    ann = policy.employees["101"].on_no_answer.announcement
    assert (ann.kind, ann.text) == ("tts", "Hold on")
    assert announcement_sound(ann) == FORWARD_NOTICE


def test_file_and_text_are_both_kept():
    policy = parse_policy('employees:\n  "101": {announcement: {file: anna, text: "Anna is out"}}\n')
    ann = policy.employees["101"].announcement
    assert (ann.kind, ann.file, ann.text) == ("custom", "anna", "Anna is out")


def test_employee_announcement_is_the_default_of_their_forwards():
    policy = parse_policy(
        'employees:\n  "101":\n    announcement: none\n    on_no_answer: {action: forward, to: "102"}\n'
        '    on_busy: {action: forward, to: "102", announcement: standard}\n  "102": {}\n'
    )
    emp = policy.employees["101"]
    assert emp.on_no_answer.announcement.kind == "none"
    assert emp.on_busy.announcement.kind == "standard"


def test_two_colleagues_covering_for_each_other_is_not_a_loop_with_one_forward():
    text = 'employees:\n  "101": {on_no_answer: {action: forward, to: "102"}}\n  "102": {on_no_answer: {action: forward, to: "101"}}\n'
    parse_policy(text)
    with pytest.raises(PolicyError, match="forward loop"):
        parse_policy("site: {max_forwards: 2}\n" + text)


def test_duplicate_keys_everywhere_are_all_reported():
    text = 'site:\n  ring_time: 10\n  ring_time: 20\ndepartments:\n  sales: {}\n  sales: {}\nemployees: {"101": {}, 101: {}}\n'
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "p.yaml")
    assert [str(p) for p in info.value.problems] == [
        "p.yaml:3:3: site: duplicate key 'ring_time' (already defined at line 2, column 3); each may appear once",
        "p.yaml:6:3: departments: duplicate department 'sales' (already defined at line 5, column 3); each may appear once",
        "p.yaml:7:24: employees: duplicate extension '101' (already defined at line 7, column 13); each may appear once",
    ]


def test_unreadable_file(tmp_path):
    with pytest.raises(PolicyError, match=r"nowhere.yaml:1:1: cannot read the policy: No such file"):
        load_policy(tmp_path / "nowhere.yaml")


def test_voicemail_recipients_and_email_are_read():
    policy = parse_policy(
        'employees:\n  "101": {email: ivan@example.com, voicemail_to: ["102", sales, boss@example.com]}\n'
        '  "102": {}\ndepartments:\n  sales: {members: ["102"]}\n'
    )
    ivan = policy.employees["101"]
    assert ivan.email == "ivan@example.com"
    assert ivan.voicemail_to == ("102", "sales", "boss@example.com")
    assert policy.employees["102"].voicemail_to == ()
