"""The dialplan file format as JSON Schema (draft 2020-12), generated from the checker's own
field declarations: every verb of :data:`ivr.dialplan.verbs.REGISTRY` with its ``FIELDS``,
``MAIN`` shorthand, required keys, defaults and ranges, the route kinds and the settings.

``ivr check`` stays the judge (it also checks references, templates, time zones, prompt
files, unreachable steps): the schema tells a form or an editor what each verb takes.

    doc = dialplan_json_schema()
    doc["$defs"]["verbs"]["menu"]     # the arguments of `menu`
"""
from __future__ import annotations

from typing import Any

from ivr.dialplan.loader import ROUTE_KINDS, SETTINGS_FIELDS, TOP_KEYS
from ivr.dialplan.numbers import ALL_CLASSES
from ivr.dialplan.schema import FLOW_JSON, NAME_RE, FieldType
from ivr.dialplan.verbs import REGISTRY

SCHEMA_ID = "https://ivr.invalid/schemas/dialplan.json"


def _default(value: Any) -> Any:
    """A default that JSON can carry (None when it cannot: templates, regexes, sets)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    source = getattr(value, "source", None)  # a Template
    if isinstance(source, str):
        return source
    return None


def field_schema(field: FieldType) -> dict:
    out = dict(field.json or {})
    default = _default(field.default)
    if default is not None:
        out["default"] = default
    return out


def _object(fields: dict[str, FieldType]) -> dict:
    required = [k for k, f in fields.items() if f.required]
    out: dict = {"type": "object", "additionalProperties": False,
                 "properties": {k: field_schema(f) for k, f in fields.items()},
                 "x-order": list(fields)}
    if required:
        out["required"] = required
    return out


def verb_arguments(verb) -> dict:
    """What may follow ``verb:`` in a step."""
    fields = verb.FIELDS
    if not fields:
        return {"type": "null"}
    if getattr(verb, "WHOLE", False):
        return {**field_schema(fields[verb.MAIN]), "x-main": verb.MAIN}
    forms = [_object(fields)]
    if verb.MAIN is not None:
        main = field_schema(fields[verb.MAIN])
        forms.append({"not": {"type": ["object", "array", "null"]}, **main})
    if not any(f.required for f in fields.values()):
        forms.append({"type": "null"})
    out: dict = {"anyOf": forms} if len(forms) > 1 else forms[0]
    if verb.MAIN is not None:
        out["x-main"] = verb.MAIN
    return out


def step_schema() -> dict:
    forms = []
    for name, verb in REGISTRY.items():
        forms.append({"type": "object", "required": [name], "additionalProperties": False,
                      "properties": {name: {"$ref": f"#/$defs/verbs/{name}"}}})
        if not any(f.required for f in verb.FIELDS.values()):
            forms.append({"const": name})
    return {"oneOf": forms}


def route_schema() -> dict:
    forms = []
    for kind in ROUTE_KINDS:
        value = {"enum": list(ALL_CLASSES)} if kind == "class" else {"type": "string",
                                                                     "minLength": 1}
        forms.append({"type": "object", "required": [kind, "flow"], "additionalProperties": False,
                      "properties": {kind: value, "flow": FLOW_JSON,
                                     "description": {"type": "string"}}})
    return {"oneOf": forms}


def dialplan_json_schema() -> dict:
    flow_name = "^" + NAME_RE.pattern.removesuffix(r"\Z") + "$"
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "ivr dialplan file",
        "type": ["object", "null"],
        "additionalProperties": False,
        "properties": {
            "settings": _object(SETTINGS_FIELDS),
            "routes": {"type": "array", "items": {"$ref": "#/$defs/route"}},
            "flows": {"type": "object", "propertyNames": {"pattern": flow_name},
                      "additionalProperties": {"$ref": "#/$defs/steps"}},
        },
        "x-sections": list(TOP_KEYS),
        "$defs": {
            "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}},
            "step": step_schema(),
            "route": route_schema(),
            "verbs": {name: verb_arguments(verb) for name, verb in REGISTRY.items()},
        },
    }


__all__ = ["dialplan_json_schema", "verb_arguments", "field_schema"]
