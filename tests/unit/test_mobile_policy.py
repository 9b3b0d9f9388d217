"""Forwards outside the PBX in the policy: an employee's mobile, "ring my mobile too", outside
numbers in any usual form, the trunk, the administrator's switch; `check` refuses a number the
site does not allow at its file:line:column, in one file and in a policy directory."""

from pathlib import Path

import pytest

from pbx_app.cli import main
from pbx_app.policy import PolicyError, analyse_file, parse_policy
from pbx_app.policy.external import outside_number
from pbx_app.policy.model import MOBILE, MobileRing, Trunk, is_outside
from pbx_app.policy.numbers import canonical_number

SITE = """site:
  outbound:
    allow: [_79XXXXXXXXX]
    deny: [_7900666XXXX]
    trunk: {endpoint: carrier, format: national, prefix: "9", present: company, number: "+7 495 123-45-67"}
"""


def policy(employees: str, site: str = SITE):
    return parse_policy(site + "employees:\n" + employees)


@pytest.mark.parametrize("written", ["+7 900 123-45-67", "8 (900) 123 45 67", "79001234567", "9001234567", "+7(900)1234567"])
def test_an_outside_number_in_any_usual_form_is_one_number(written):
    assert canonical_number(written) == "79001234567"
    assert is_outside(written)


@pytest.mark.parametrize("target", ["101", "sales", "12-34", "+7 900 12a 45 67"])
def test_extensions_and_names_are_not_outside(target):
    assert not is_outside(target)


def test_trunk_writes_the_number_as_the_carrier_wants_it():
    assert Trunk("carrier", format="national", prefix="9").dialled("79001234567") == "989001234567"
    assert Trunk("carrier", format="plus").dialled("79001234567") == "+79001234567"
    assert Trunk("carrier").dialled("442071234567") == "442071234567"
    assert Trunk("carrier", format="national").dialled("442071234567") == "442071234567"  # not a national number


def test_mobile_ring_together_and_forwards_are_read():
    p = policy("""  "101":
    mobile: "+7 900 123-45-67"
    ring_mobile: {after: 10}
    on_no_answer: {action: forward, to: mobile, confirm: false}
  "102":
    ring_mobile: true
    mobile: 8 900 765 43 21
    on_busy: {action: forward, to: "+7 (900) 111-22-33"}
    on_no_answer: {action: forward, to: "101", whisper: true}
  "103":
    external_forwarding: false
""")
    a, b, c = p.employees["101"], p.employees["102"], p.employees["103"]
    assert a.mobile == "+7 900 123-45-67" and a.ring_mobile == MobileRing(after=10)
    assert a.on_no_answer.target == MOBILE and a.on_no_answer.confirm is False
    assert b.ring_mobile == MobileRing(after=0) and b.on_busy.target == "+7 (900) 111-22-33" and b.on_busy.confirm
    assert b.on_no_answer.whisper and not a.on_no_answer.whisper
    assert not c.external_forwarding and a.external_forwarding
    trunk = p.site.outbound.trunk
    assert trunk == Trunk("carrier", format="national", prefix="9", present="company", number="+7 495 123-45-67")
    assert outside_number(p, a, MOBILE).digits == "79001234567" and outside_number(p, a, MOBILE).allowed


CHECK_ERRORS = [
    # a forward to a number the site does not allow
    ("""  "101":\n    on_no_answer: {action: forward, to: "+44 20 7123 4567"}\n""",
     8, 41, "employees.101.on_no_answer.to: +44 20 7123 4567 cannot be dialled: +44 20 7123 4567 (442071234567) is not "
            "allowed: matches none of site.outbound.allow"),
    # a denied one
    ("""  "101":\n    on_busy: {action: forward, to: 79006661234}\n""",
     8, 36, "79006661234 is not allowed: matches site.outbound.deny"),
    # to: mobile with no mobile
    ("""  "101":\n    on_no_answer: {action: forward, to: mobile}\n""",
     8, 41, "101 has no mobile number (employees.101.mobile)"),
    # joining after the ring is over
    ("""  "101":\n    mobile: "+7 900 123-45-67"\n    ring_time: 20\n    ring_mobile: {after: 20}\n""",
     10, 26, "ring_mobile.after: 20 s is not within the ring time (20 s)"),
    # a mobile that is not a number
    ("""  "101":\n    mobile: call me\n""", 8, 13, "employees.101.mobile: 'call me' is not a telephone number"),
]


@pytest.mark.parametrize("employees,line,column,words", CHECK_ERRORS)
def test_check_refuses_at_the_place(tmp_path, employees, line, column, words):
    path = tmp_path / "policy.yaml"
    path.write_text(SITE + "employees:\n" + employees)
    errors = analyse_file(path).errors
    assert [(e.line, e.column) for e in errors] == [(line, column)], errors
    assert words in errors[0].message and errors[0].source == str(path)


def test_no_trunk_no_outside_forward(tmp_path):
    site = "site:\n  outbound:\n    allow: [_79XXXXXXXXX]\n"
    with pytest.raises(PolicyError, match="site.outbound.trunk is not set"):
        policy("""  "101":\n    on_no_answer: {action: forward, to: "89001234567"}\n""", site)


def test_trunk_settings_are_checked(tmp_path):
    site = ("site:\n  outbound:\n    allow: [_79XXXXXXXXX]\n"
            "    trunk: {endpoint: \"bad trunk\", prefix: x9, present: company}\n")
    path = tmp_path / "p.yaml"
    path.write_text(site)
    messages = [(e.line, e.column, e.message) for e in analyse_file(path).errors]
    assert (4, 23, "site.outbound.trunk.endpoint: 'bad trunk' is not a PJSIP endpoint name (letters, digits, '_', '-', '.')") in messages
    assert any(m.startswith("site.outbound.trunk.prefix: 'x9' is not digits") and (line, col) == (4, 44)
               for line, col, m in messages)
    assert any("present: company needs 'number'" in m for _, _, m in messages)


def test_check_in_a_policy_directory_names_the_employees_file(tmp_path, capsys):
    (tmp_path / "site.yaml").write_text(SITE)
    (tmp_path / "employees").mkdir()
    own = tmp_path / "employees" / "101.yaml"
    own.write_text('employees:\n  "101":\n    mobile: "+44 20 7123 4567"\n    ring_mobile: {after: 5}\n')
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert f"{own}:3:13: employees.101.mobile: the mobile cannot be rung" in text and "not allowed: matches none of site.outbound.allow" in text


def test_an_allowed_setup_checks_clean(tmp_path, capsys):
    path = tmp_path / "policy.yaml"
    path.write_text(SITE + """employees:
  "101":
    mobile: "+7 900 123-45-67"
    ring_mobile: {after: 5}
    on_no_answer: {action: forward, to: mobile}
    on_busy: {action: forward, to: 8 900 111 22 33}
""")
    assert main(["check", str(path)]) == 0, capsys.readouterr()


def test_the_administrators_switch_wins_with_a_warning_not_a_broken_policy(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(SITE + """employees:\n  "101":\n    mobile: "+7 900 123-45-67"\n    external_forwarding: false
    ring_mobile: true\n    on_no_answer: {action: forward, to: mobile}\n""")
    analysis = analyse_file(path)
    assert not analysis.errors
    assert [(w.line, w.column) for w in analysis.warnings] == [(10, 18), (11, 41)]
    assert "an administrator has forbidden forwarding 101's calls outside" in analysis.warnings[0].message
    assert analysis.warnings[0].message.endswith("ignored: calls ring the desk phone only")
