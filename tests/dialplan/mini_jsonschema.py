"""A small JSON Schema validator for the keywords ivr.dialplan.json_schema emits, so the tests
can check the exported schema against the checker without a JSON Schema package.  When the
``jsonschema`` package is importable the tests use it as well."""
from __future__ import annotations

import re

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is_type(value, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def valid(value, schema, root=None) -> bool:
    root = root if root is not None else schema
    if schema is True or schema == {}:
        return True
    if schema is False:
        return False
    if "$ref" in schema:
        node = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        if not valid(value, node, root):
            return False
    t = schema.get("type")
    if t is not None and not any(_is_type(value, n) for n in ([t] if isinstance(t, str) else t)):
        return False
    if "const" in schema and value != schema["const"]:
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "anyOf" in schema and not any(valid(value, s, root) for s in schema["anyOf"]):
        return False
    if "oneOf" in schema and sum(valid(value, s, root) for s in schema["oneOf"]) != 1:
        return False
    if "not" in schema and valid(value, schema["not"], root):
        return False
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return False
        if len(value) < schema.get("minLength", 0):
            return False
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            return False
        if "maximum" in schema and value > schema["maximum"]:
            return False
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            return False
        if "items" in schema and not all(valid(v, schema["items"], root) for v in value):
            return False
    if isinstance(value, dict):
        if len(value) < schema.get("minProperties", 0):
            return False
        if any(k not in value for k in schema.get("required", ())):
            return False
        props = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        for k, v in value.items():
            if "propertyNames" in schema and not valid(k, schema["propertyNames"], root):
                return False
            matched = False
            if k in props:
                matched = True
                if not valid(v, props[k], root):
                    return False
            for pat, sub in patterns.items():
                if re.search(pat, k):
                    matched = True
                    if not valid(v, sub, root):
                        return False
            if not matched and "additionalProperties" in schema:
                if not valid(v, schema["additionalProperties"], root):
                    return False
    return True
