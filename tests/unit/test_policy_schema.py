"""config/policy.schema.json: the shipped policies validate against it, it rejects what the
loader rejects for shape, and it knows exactly the keys the loader knows."""

import datetime
import json
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from pbx_app.policy import loader

CONFIG = Path(__file__).resolve().parents[2] / "config"
SCHEMA = json.loads((CONFIG / "policy.schema.json").read_text())


def as_editor_sees_it(value):
    """YAML as a YAML language server hands it to the schema: keys as strings, dates as text."""
    if isinstance(value, dict):
        return {str(k): as_editor_sees_it(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_editor_sees_it(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def load(text):
    return as_editor_sees_it(YAML(typ="safe").load(text))


def test_schema_is_a_valid_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("name", ["policy.yaml", "policy.example.yaml"])
def test_shipped_policies_validate(name):
    jsonschema.validate(load((CONFIG / name).read_text()), SCHEMA, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(
    "text",
    [
        'employees: {"101": {ring_time: 0}}',
        'employees: {"101": {on_no_answer: {action: forward}}}',  # forward without to
        'employees: {"101": {on_no_answer: {action: teleport}}}',
        'employees: {"101": {vacation: yes}}',
        'employees: {"101": {schedule: {mon-fri: "9-18"}}}',
        'employees: {"101": {schedule: {mo: "09:00-18:00"}}}',
        'employees: {"101": {announcement: loud}}',
        'employees: {"101": {absences: [{to: 2026-01-01}]}}',
        "crm: {webhook: {url: crm.local}}",
        "site: {max_forwards: 11}",
    ],
)
def test_schema_rejects_bad_shapes(text):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(load(text), SCHEMA, cls=jsonschema.Draft202012Validator)


def props(name):
    return set(SCHEMA["$defs"][name]["properties"])


def test_schema_knows_the_loaders_keys():
    assert set(SCHEMA["properties"]) == loader.TOP_KEYS
    assert props("site") == loader.SITE_KEYS
    assert props("employee") == loader.EMPLOYEE_KEYS
    assert props("department") == loader.DEPARTMENT_KEYS
    assert props("action") == loader.ACTION_KEYS | loader.CALLBACK_KEYS
    assert props("crm") == loader.CRM_KEYS
    assert props("crm_rule") == loader.CRM_RULE_KEYS
    assert set(SCHEMA["$defs"]["crm"]["properties"]["webhook"]["properties"]) == loader.WEBHOOK_KEYS
