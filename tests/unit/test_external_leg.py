"""The external leg's Dial() string and the dialplan that reads it back agree field by field."""

import re
from pathlib import Path

import pytest

from pbx_app.routing.external_leg import ExternalLeg, dial_string

DIALPLAN = Path(__file__).resolve().parents[2] / "dialplan" / "pbx_external.conf"


def test_the_dial_string_names_every_field_in_the_order_the_dialplan_cuts_them():
    leg = ExternalLeg(employee="101", digits="+79005550101", trunk="carrier_out", delay=5, confirm=False,
                      present="74951234567")
    assert dial_string(leg) == "Local/101*5*0*74951234567*+79005550101*carrier_out@pbx-external/n"
    cuts = dict(re.findall(r"Set\(PBX_EXT_(\w+)=\$\{CUT\(EXTEN,\*,(\d)\)\}\)", DIALPLAN.read_text()))
    assert cuts == {"EMPLOYEE": "1", "DELAY": "2", "CONFIRM": "3", "PRESENT": "4", "DIGITS": "5", "TRUNK": "6"}


def test_defaults_confirm_and_show_the_client():
    leg = ExternalLeg(employee="101", digits="89005550101", trunk="carrier")
    assert dial_string(leg) == "Local/101*0*1*c*89005550101*carrier@pbx-external/n"


@pytest.mark.parametrize(("field", "value"), [("digits", "7900&555"), ("trunk", "carrier,x"), ("employee", ""),
                                              ("present", "749*5"), ("digits", "8 900")])
def test_a_field_that_would_break_the_dial_string_is_refused_by_name(field, value):
    values = {"employee": "101", "digits": "89005550101", "trunk": "carrier", field: value}
    with pytest.raises(ValueError, match=f"external leg {field} "):
        dial_string(ExternalLeg(**values))
