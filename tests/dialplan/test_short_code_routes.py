"""Exact ``number:`` routes for short codes and extensions (611, 7001, '*97'), and the
label a match leaves in the CDR's ``route`` column."""
from __future__ import annotations

import pytest

from ivr.dialplan.loader import load_dialplans
from ivr.dialplan.router import Router

from tests.dialplan.helpers import plan_of

PLAN = """
settings: {default_region: US}
routes:
  - {number: 611, flow: support}
  - {number: "7001", flow: conference}
  - {number: '*97', flow: voicemail}
  - {number: "#1", flow: hash}
  - {number: "1-800-555-0100", flow: menu}
  - {name: echo, flow: echo}
  - {prefix: "6", flow: six}
  - {pattern: "_7XXX", flow: sevens}
  - {regex: "^\\\\+49", flow: germany}
  - {class: toll_free, flow: tollfree}
flows:
  support: [hangup]
  conference: [hangup]
  voicemail: [hangup]
  hash: [hangup]
  menu: [hangup]
  echo: [hangup]
  six: [hangup]
  sevens: [hangup]
  germany: [hangup]
  tollfree: [hangup]
"""


@pytest.fixture
def router(tmp_path):
    return Router(plan_of(tmp_path, PLAN))


@pytest.mark.parametrize("dialled,flow,called", [
    ("611", "support", "611"),                    # exact beats the prefix "6"
    ("sip:611@pbx.example", "support", "611"),
    ("6-1-1", "support", "6-1-1"),                # visual separators are not digits
    ("7001", "conference", "7001"),               # exact beats the pattern _7XXX
    ("*97", "voicemail", "*97"),
    ("%2A97", "voicemail", "*97"),                # escaped in a URI
    ("#1", "hash", "#1"),
    ("6123", "six", "6123"),                      # not a route: the prefix still works
    ("7002", "sevens", "7002"),
    ("8005550100", "menu", "+18005550100"),
])
def test_short_codes_route_exactly(router, dialled, flow, called):
    m = router.route(dialled)
    assert m is not None and m.flow == flow, m
    assert m.called == called


def test_a_short_code_is_not_a_prefix_or_a_suffix(router):
    assert router.route("61").flow == "six"       # prefix route, not the exact 611
    assert router.route("+1611") is None
    assert router.route("97") is None


def test_route_number_keys():
    from ivr.dialplan.numbers import route_number
    assert route_number("611", "US") == "611"
    assert route_number("6 1 1", "US") == "611"
    assert route_number("*97", "US") == "*97"
    assert route_number("800-555-0100", "US") == "+18005550100"
    # A short string the region's numbering plan could dial stays E.164, as a dialled
    # one does: the route and the dialled number meet on the same key.
    assert route_number("7001", "GB") == "+447001"
    for garbage in ("abc", "+12", "", "123456789", "61a", "9" * 20, "+", "*", "1*2#3+4"):
        assert route_number(garbage, "US") is None, garbage


@pytest.mark.parametrize("value,col", [
    ('"abc"', 14), ("'+12'", 14), ("123456789", 14), ("'61x'", 14), ("''", 14),
])
def test_garbage_number_routes_are_file_line_col_errors(tmp_path, value, col):
    path = tmp_path / "p.yaml"
    path.write_text(f"routes:\n  - {{number: {value}, flow: main}}\nflows:\n  main: [hangup]\n")
    plan, errors = load_dialplans(path, None)
    assert plan is None
    assert [(e.file, e.line, e.col) for e in errors] == [(str(path), 2, col)], errors
    assert "is not a phone number (region US) or a short code" in errors[0].message


def test_short_code_duplicates_are_reported(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("routes:\n  - {number: 611, flow: main}\n  - {number: '6-1-1', flow: main}\n"
                    "flows:\n  main: [hangup]\n")
    plan, errors = load_dialplans(path, None)
    assert plan is None and [(e.line, e.col) for e in errors] == [(3, 5)]
    assert f"number '611' is already routed at {path}:2:5" in errors[0].message


@pytest.mark.parametrize("dialled,label", [
    ("611", "number:611"),
    ("*97", "number:*97"),
    ("+18005550100", "number:+18005550100"),
    ("echo", "name:echo"),
    ("6123", "prefix:6"),
    ("7002", "pattern:_7XXX"),
    ("+493012345678", "regex:^\\+49"),
    ("8885550123", "class:toll_free"),
])
def test_match_label_names_the_route_as_written(router, dialled, label):
    assert router.route(dialled).label == label
