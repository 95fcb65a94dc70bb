"""config/api.yaml: values reach ApiConfig; mistakes come back as file:line:col."""
from __future__ import annotations

from pathlib import Path

from ivr.api.config import ApiConfig
from ivr.api.config_file import load_api_config, parse_api_config

ROOT = Path(__file__).resolve().parents[2]


def test_bundled_file_loads():
    config, errors = load_api_config(ROOT / "config" / "api.yaml")
    assert errors == [] and config.demo_agent == "2001" and config.rate == 5.0


def test_values_override_the_base():
    text = """
default_caller_id: "+18005550100"
api_keys:
  "0123456789abcdef-key": {name: crm, rate: 10}
demo: {agent: 2002, whisper: "Web call", rate_calls: 1}
"""
    config, errors = parse_api_config(text, "api.yaml", ApiConfig(recordings_dir="/r"))
    assert errors == []
    assert config.default_caller_id == "+18005550100" and config.recordings_dir == "/r"
    assert config.api_keys == {"0123456789abcdef-key": {"name": "crm", "rate": 10}}
    assert config.demo_agent == "2002" and config.demo_whisper == "Web call"
    assert config.demo_rate_calls == 1


def test_errors_have_positions():
    text = "rate: -1\nbogus: 1\napi_keys:\n  short: {}\ndemo:\n  enabled: 3\n  agentt: x\n"
    config, errors = parse_api_config(text, "api.yaml")
    assert config is None
    assert [str(e) for e in errors] == [
        "api.yaml:1:7: rate must be a number from 0.01 to 10000",
        "api.yaml:2:1: unknown key 'bogus' in the API file",
        "api.yaml:4:3: an API key must be at least 16 characters",
        "api.yaml:6:12: demo enabled must be true or false",
        "api.yaml:7:3: unknown key 'agentt' in demo (known: enabled, agent, caller_id, whisper, "
        "rate_calls, rate_period, trust_forwarded_for)",
    ]


def test_missing_file_gives_the_base():
    base = ApiConfig(demo_agent="2009")
    config, errors = load_api_config("/nonexistent/api.yaml", base)
    assert config is base and errors == []
