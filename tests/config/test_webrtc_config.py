"""The ``webrtc:`` key of the extensions file (anonymous browser callers, issue #16):
defaults when absent (the bundled demo lines, 6 calls a minute, 2 at once), the admin's
values when given, every mistake reported with its line and column."""
from __future__ import annotations

from ivr.config.extensions import parse_extensions
from ivr.config.webrtc import DEFAULT_TARGETS


def test_defaults_are_the_bundled_demo_lines():
    config, errors = parse_extensions("realm: ivr.local\n")
    assert errors == []
    assert config.webrtc.targets == DEFAULT_TARGETS == ("+18005550100", "+15550000001", "echo")
    assert (config.webrtc.calls_per_minute, config.webrtc.max_concurrent_per_visitor) == (6, 2)


def test_values_are_read():
    config, errors = parse_extensions("""\
webrtc:
  targets: ["18005550100", support-line, "+1 (555) 000-0002"]
  calls_per_minute: 30
  max_concurrent_per_visitor: 5
""")
    assert errors == []
    assert config.webrtc.targets == ("18005550100", "support-line", "+1 (555) 000-0002")
    assert (config.webrtc.calls_per_minute, config.webrtc.max_concurrent_per_visitor) == (30, 5)
    # an empty list: browser callers may call nothing; other keys keep their defaults
    config, errors = parse_extensions("webrtc: {targets: []}\n")
    assert errors == [] and config.webrtc.targets == () and config.webrtc.calls_per_minute == 6


def test_mistakes_are_reported_with_line_and_column():
    config, errors = parse_extensions("""\
webrtc:
  targets: [echo, "sip:evil@x", ECHO]
  calls_per_minute: 0
  max_concurrent_per_visitor: many
  trunk: carrier
""", file="ext.yaml")
    assert config is None
    messages = [str(e) for e in errors]
    assert messages == [
        "ext.yaml:2:12: webrtc targets: 'ECHO' is listed twice",
        "ext.yaml:2:19: item of webrtc targets 'sip:evil@x' is not valid",
        "ext.yaml:3:21: webrtc calls_per_minute must be between 1 and 10000",
        "ext.yaml:4:31: webrtc max_concurrent_per_visitor must be a whole number",
        "ext.yaml:5:3: unknown key 'trunk' in webrtc",
    ]
    config, errors = parse_extensions("webrtc: [echo]\n", file="ext.yaml")
    assert [str(e) for e in errors] == ["ext.yaml:1:9: webrtc must be a mapping"]
