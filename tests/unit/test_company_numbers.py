"""Issue 23.5: the company's numbers (DIDs) in the policy — one key for every written form, one
owner per number, and a call to a number reaches its owner."""

from datetime import datetime, timezone

import pytest

from pbx_app.policy import parse_policy
from pbx_app.policy.numbers import normalise_did
from pbx_app.policy.problems import PolicyError
from pbx_app.routing.decide import CallContext, decide

POLICY = """
employees:
  "101": {name: Ivan Petrov, numbers: ["+7 495 123-45-67"]}
  "102": {name: Petr Ivanov}
  "103": {name: Anna Smirnova}
departments:
  sales:
    name: Sales
    members: ["102", "103"]
    numbers:
      - "8 (495) 765-43-21"
"""
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("written", ["+7 495 123-45-67", "84951234567", "4951234567", "7 (495) 123 45 67",
                                     "+7-495-123-4567"])
def test_every_written_form_is_one_number(written):
    assert normalise_did(written) == "4951234567"


def test_other_numbers_keep_their_digits():
    assert normalise_did("+44 20 7946 0958") == "442079460958"
    assert normalise_did("123-45") == "12345"


def test_a_call_to_an_employees_number_rings_them_and_says_which_number():
    policy = parse_policy(POLICY, "policy.yaml")
    plan = decide(policy, CallContext("74951234567", "79001234567", NOW))
    assert plan.extension == "101"
    assert [t.extension for t in plan.first.targets] == ["101"]
    assert plan.reasons[0] == "dialled 74951234567: the number +7 495 123-45-67 of employee 101"


def test_a_call_to_a_departments_number_rings_the_group_then_the_site_default():
    policy = parse_policy(POLICY, "policy.yaml")
    plan = decide(policy, CallContext("4957654321", "79001234567", NOW))
    assert plan.extension == "sales"
    assert [t.extension for t in plan.first.targets] == ["102", "103"]
    assert (plan.first.department, plan.first.timeout) == ("sales", 20)
    assert [s.type for s in plan.on_no_answer] == ["drop"]
    assert "the number 8 (495) 765-43-21 of department sales" in plan.reasons[0]


def test_an_extension_is_still_an_extension():
    plan = decide(parse_policy(POLICY, "policy.yaml"), CallContext("102", "79001234567", NOW))
    assert plan.extension == "102" and not plan.reasons[0].startswith("dialled")


def test_a_number_given_to_two_owners_is_refused_naming_both_lines():
    text = POLICY.replace('      - "8 (495) 765-43-21"', '      - "8 (495) 765-43-21"\n      - "84951234567"')
    with pytest.raises(PolicyError) as refused:
        parse_policy(text, "policy.yaml")
    [problem] = refused.value.problems
    assert str(problem) == ("policy.yaml:12:9: departments.sales.numbers[1]: 84951234567 is already the number of "
                            "employee 101 (+7 495 123-45-67, policy.yaml:3:40); one number, one owner")


def test_something_that_is_not_a_number_is_refused_where_it_is():
    with pytest.raises(PolicyError) as refused:
        parse_policy(POLICY.replace('["+7 495 123-45-67"]', '["sales line"]'), "policy.yaml")
    assert str(refused.value).startswith("policy.yaml:3:40: employees.101.numbers[0]: expected a phone number")
