"""``config/api.yaml``: API keys, numbers and the demo page, validated with line numbers.

    default_region: US           # how national numbers in requests are read
    default_caller_id: "+18005550100"
    rate: 5                      # default per-key requests/second ...
    burst: 20                    # ... and bucket size
    ring_timeout: 30             # default ring timeout of each leg
    api_keys:                    # keep this file private (chmod 600); IVR_API_KEY adds one
      "long-random-key": {name: crm, rate: 10, burst: 50}
      "another-long-key": {name: ops, admin: true}   # may read and edit the dialplans
    demo:
      enabled: true
      agent: "2001"              # who the demo page's visitors are connected with
      caller_id: "+18005550100"  # what the visitor's phone shows
      whisper: "Web call from the demo page."
      rate_calls: 3              # per visitor ...
      rate_period: 60            # ... per this many seconds
      trust_forwarded_for: false # behind a reverse proxy: the visitor IP from X-Forwarded-For
"""
from __future__ import annotations

from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from ..errors import SourceError
from .config import ApiConfig

_NUMBERS = {"rate": (0.01, 10000.0), "burst": (1.0, 100000.0), "ring_timeout": (1.0, 600.0)}
_STRINGS = ("default_region", "default_caller_id")
_DEMO = {"enabled": "demo_enabled", "agent": "demo_agent", "caller_id": "demo_caller_id",
         "whisper": "demo_whisper", "rate_calls": "demo_rate_calls",
         "rate_period": "demo_rate_period", "trust_forwarded_for": "trust_forwarded_for"}
_KEY_FIELDS = {"name", "rate", "burst", "admin"}  # admin: true may edit the dialplans


class _Errors(list):
    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file

    def at(self, node: Node, message: str) -> None:
        self.append(SourceError(self.file, node.start_mark.line + 1, node.start_mark.column + 1,
                                message))


def _mapping(node: Node, what: str, errors: _Errors) -> dict[str, tuple[Node, Node]]:
    if not isinstance(node, MappingNode):
        errors.at(node, f"{what} must be a mapping")
        return {}
    return {k.value: (k, v) for k, v in node.value if isinstance(k, ScalarNode)}


def _value(node: Node):
    return yaml.SafeLoader("").construct_object(node, deep=True)


def parse_api_config(text: str, file: str = "<string>",
                     base: ApiConfig | None = None) -> tuple[ApiConfig | None, list[SourceError]]:
    errors = _Errors(file)
    config = base or ApiConfig()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        return None, [SourceError(file, mark.line + 1 if mark else 1,
                                  mark.column + 1 if mark else 1, f"YAML: {exc.problem}")]
    if root is None:
        return config, []
    values: dict = {}
    for key, (knode, vnode) in _mapping(root, "the API file", errors).items():
        if key in _NUMBERS:
            value = _value(vnode)
            low, high = _NUMBERS[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                errors.at(vnode, f"{key} must be a number from {low:g} to {high:g}")
            else:
                values[key] = float(value)
        elif key in _STRINGS:
            value = _value(vnode)
            if not isinstance(value, str) or not value:
                errors.at(vnode, f"{key} must be a non-empty string")
            else:
                values[key] = value
        elif key == "api_keys":
            keys = {}
            for name, (kn, vn) in _mapping(vnode, "api_keys", errors).items():
                settings = _value(vn) or {}
                if len(name) < 16:
                    errors.at(kn, "an API key must be at least 16 characters")
                elif not isinstance(settings, dict) or set(settings) - _KEY_FIELDS:
                    errors.at(vn, f"a key's settings are a mapping of {sorted(_KEY_FIELDS)}")
                else:
                    keys[name] = settings
            values["api_keys"] = keys
        elif key == "demo":
            for name, (kn, vn) in _mapping(vnode, "demo", errors).items():
                value = _value(vn)
                if name not in _DEMO:
                    errors.at(kn, f"unknown key '{name}' in demo (known: {', '.join(_DEMO)})")
                elif name in ("enabled", "trust_forwarded_for") and not isinstance(value, bool):
                    errors.at(vn, f"demo {name} must be true or false")
                elif name in ("agent", "caller_id", "whisper") and not isinstance(value, (str, int)):
                    errors.at(vn, f"demo {name} must be a string")
                elif name.startswith("rate_") and (isinstance(value, bool) or not isinstance(
                        value, (int, float)) or value <= 0):
                    errors.at(vn, f"demo {name} must be a positive number")
                else:
                    values[_DEMO[name]] = str(value) if name in ("agent", "caller_id") else value
        else:
            errors.at(knode, f"unknown key '{key}' in the API file")
    if errors:
        return None, sorted(errors, key=lambda e: (e.line, e.col))
    for name, value in values.items():
        setattr(config, name, value)
    return config, []


def load_api_config(path: str | Path, base: ApiConfig | None = None):
    path = Path(path)
    if not path.exists():
        return base or ApiConfig(), []
    return parse_api_config(path.read_text(encoding="utf-8"), str(path), base)
