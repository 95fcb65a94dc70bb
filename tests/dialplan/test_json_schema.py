"""The verb schema exported as JSON Schema agrees with the checker (`ivr check`)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ivr.dialplan.json_schema import dialplan_json_schema
from ivr.dialplan.loader import load_dialplans
from ivr.dialplan.verbs import REGISTRY

from .mini_jsonschema import valid

ROOT = Path(__file__).resolve().parents[2]

VALID_STEPS = [
    "answer", "hangup", {"say": "Hello"}, {"say": {"text": "Hi", "barge_in": True, "loop": 2}},
    {"pause": 2}, {"goto": "main"}, {"gosub": "main"}, "return",
    {"menu": {"prompt": "Press 1", "options": {"1": "main", "2": [{"say": "two"}, "hangup"]},
              "on_failure": "main", "max_failures": 2}},
    {"menu": {"prompt": [{"say": "Hi"}, "Press 1"], "options": {"11": "main"}}},
    {"gather": {"prompt": "Enter", "num_digits": 4, "finish_on_key": ""}},
    {"gather": "Enter your number"},
    {"if": {"var": "digits", "equals": "1", "then": "main", "else": [{"say": "no"}]}},
    {"switch": {"var": "x", "cases": {"a": "main"}, "default": "main"}},
    {"set": {"a": "1", "b": "{{caller.number}}"}},
    {"time": {"when": {"days": "mon-fri", "hours": "09:00-17:00"}, "holidays": ["12-25"],
              "then": "main", "else": "main"}},
    {"time": {"when": [{"days": "sat"}, {"dates": ["2030-01-01"]}], "timezone": "Europe/Paris"}},
    {"webhook": {"url": "https://x.example/", "on_failure": "main", "retries": 0}},
    {"reject": "busy"}, {"reject": {"status": 603}}, {"dial": {"to": "2001", "timeout": 20}},
    {"dial": {"to": ["2001", "2002"]}}, {"record": {"max_length": 10}}, "record", {"enqueue": "support"},
    {"log": "hi"}, {"echo": 5}, {"ring": 2}, "ring", {"say_digits": "123"}, {"transfer": "2001"},
]
INVALID_STEPS = [
    {"say": ""},                          # nothing to say
    {"say": {"text": "   "}},
    "menu", {"menu": {"prompt": "", "options": {"1": "main"}}},
    {"menu": {"prompt": "  ", "options": {"1": "main"}}},
    {"menu": {"prompt": [{"say": ""}], "options": {"1": "main"}}},
    {"menu": {"prompt": "x", "options": {}}}, {"menu": {"prompt": "x", "options": {"x1": "main"}}},
    {"menu": {"prompt": "x", "options": {"1": "main"}, "max_failures": 1.5}},
    {"menu": {"prompt": "x", "options": {"1": "main"}, "timeout": 0}},
    {"say": {"txt": "hi"}}, {"say": ["a"]}, {"pause": -1}, {"pause": "long"},
    {"gather": {"num_digits": 0}}, {"nosuch": 1}, {"say": "a", "pause": 1}, {"goto": "bad name!"},
    {"reject": "maybe"}, {"set": {}}, {"hangup": {"x": 1}}, {"time": {"when": {"color": "red"}}},
    {"if": {"equals": "1"}}, {"prompt": {"say": "x", "play": "y"}}, 5, [],
    {"say": {"text": "x", "rate": 10}}, {"dial": ["2001", "2002"]}, {"webhook": {"timeout": 3}}, {"gather": {"on_success": 7}},
]


def checker_accepts(tmp_path, step) -> bool:
    doc = {"routes": [{"number": "611", "flow": "main"}],
           "flows": {"main": ["answer", "hangup"], "sample": [step]}}
    path = tmp_path / "sample.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    plan, errors = load_dialplans([path])
    return not errors


@pytest.fixture(scope="module")
def schema():
    doc = dialplan_json_schema()
    json.dumps(doc)  # plain JSON all through
    return doc


def _validators(schema):
    checks = [lambda value: valid(value, schema)]
    try:  # a full JSON Schema implementation too, when one is installed
        import jsonschema
    except ImportError:
        return checks
    validator = jsonschema.Draft202012Validator(schema)
    checks.append(validator.is_valid)
    return checks


def test_every_verb_is_in_the_schema(schema):
    assert set(schema["$defs"]["verbs"]) == set(REGISTRY)
    named = set()
    for form in schema["$defs"]["step"]["oneOf"]:
        named |= set(form.get("required", ())) | ({form["const"]} if "const" in form else set())
    assert named == set(REGISTRY)
    for name, verb in REGISTRY.items():
        args = schema["$defs"]["verbs"][name]
        forms = args.get("anyOf", [args])
        objects = [f for f in forms if f.get("type") == "object"]
        if verb.FIELDS and not getattr(verb, "WHOLE", False):
            assert list(objects[0]["properties"]) == list(verb.FIELDS)
            assert set(objects[0].get("required", ())) == {
                k for k, f in verb.FIELDS.items() if f.required}
        assert args.get("x-main") == verb.MAIN


def test_menu_fields_carry_ranges_and_defaults_from_the_checker(schema):
    menu = schema["$defs"]["verbs"]["menu"]
    assert menu["properties"]["max_failures"] == {"type": "integer", "minimum": 1,
                                                  "maximum": 20, "default": 3}
    assert menu["required"] == ["prompt", "options"]


@pytest.mark.parametrize("step", VALID_STEPS, ids=repr)
def test_valid_steps_pass_both(tmp_path, schema, step):
    assert checker_accepts(tmp_path, step)
    doc = {"flows": {"sample": [step]}}
    for check in _validators(schema):
        assert check(doc), step


@pytest.mark.parametrize("step", INVALID_STEPS, ids=repr)
def test_invalid_steps_fail_both(tmp_path, schema, step):
    assert not checker_accepts(tmp_path, step)
    doc = {"flows": {"sample": [step]}}
    for check in _validators(schema):
        assert not check(doc), step


def test_bundled_dialplans_are_schema_valid(schema):
    files = sorted((ROOT / "tests" / "data" / "builder_plans").glob("*.yaml"))
    assert files
    for f in files:
        assert valid(yaml.safe_load(f.read_text(encoding="utf-8")), schema), f


def test_an_empty_prompt_is_a_checker_error_at_its_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text('flows:\n  main:\n    - menu:\n        prompt: ""\n        options: {"1": main}\n')
    plan, errors = load_dialplans([path])
    assert [(e.line, e.col) for e in errors] == [(4, 17)]
    assert "empty prompt" in errors[0].message


def test_an_empty_say_is_a_checker_error_at_its_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text('flows:\n  main:\n    - say: {text: ""}\n    - say: "  "\n')
    plan, errors = load_dialplans([path])
    assert [(e.line, e.col) for e in errors] == [(3, 19), (4, 12)]
    assert all("empty 'say' says nothing" in e.message for e in errors)
