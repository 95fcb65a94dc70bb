"""Issue #13, generated: every endpoint, any body/path/query, with or without a key.

The endpoints are read from the klein app's own routing table (so a route added later is
covered without editing this file; ``DOCUMENTED`` checks the table is what we think).
Every request goes through twisted.web's real HTTP parser.  The property: the answer is
the endpoint's normal success (2xx) or a 4xx with the ``{"error": {"code", "message"}}``
JSON shape, never a 5xx, and nothing is logged as an error.
"""
from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.api.limits import MAX_BODY

from .harness import DEV_KEY, Env
from .logs import ErrorLog
from .wire import Wire

#: The endpoints listed in ivr/api/app.py's docstring (and the demo routes).
DOCUMENTED = {
    ("POST", "/v1/click-to-call"), ("GET", "/v1/click-to-call"),
    ("GET", "/v1/click-to-call/<session_id>"), ("DELETE", "/v1/click-to-call/<session_id>"),
    ("POST", "/v1/calls"), ("GET", "/v1/calls"), ("GET", "/v1/calls/<call_id>"),
    ("DELETE", "/v1/calls/<call_id>"), ("GET", "/v1/cdrs"), ("GET", "/v1/lookup/<number>"),
    ("GET", "/v1/dnd"), ("PUT", "/v1/dnd/<number>"), ("DELETE", "/v1/dnd/<number>"),
    ("GET", "/metrics"), ("GET", "/demo/click-to-call"), ("GET", "/demo/click-to-call.js"),
    ("POST", "/demo/api/click-to-call"), ("GET", "/demo/api/sessions/<session_id>"),
}
FIELDS = ["agent", "customer", "caller_id", "callback_url", "max_duration", "record",
          "whisper", "timeout", "transactional", "to", "flow", "send_digits", "variables",
          "number", "reason"]
QUERY_NAMES = ["since", "until", "number", "outcome", "limit", "offset", "format", "region"]
GOOD = {"agent": "2001", "customer": "+12025550143", "to": "+12025550143", "flow": "main",
        "number": "+12025550143"}


def routes(env) -> list[tuple[str, str]]:
    klein = env.resource.inner
    while not hasattr(klein, "_app"):  # the guards in front of the klein resource
        klein = klein.inner
    table = klein._app.url_map.iter_rules()
    return sorted((m, rule.rule) for rule in table for m in rule.methods if m != "HEAD")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    env = Env(tmp_path_factory.mktemp("api"), rate=1e9, burst=1e9,
              demo_rate_calls=1e9, demo_rate_period=1.0)
    # something for the {id} routes to find
    env.request("POST", "/v1/click-to-call", {"agent": "2001", "customer": "+12025550143"})
    env.request("POST", "/v1/calls", {"to": "+12025550143", "flow": "main"})
    env.request("PUT", "/v1/dnd/+12025550199", {"reason": "asked"})
    return env, Wire(env.resource, env.clock), routes(env)


def test_the_routing_table_holds_every_documented_endpoint(world):
    assert DOCUMENTED <= set(world[2])


# -- strategies -----------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=80),
    st.sampled_from(["+12025550143", "2001", "sip:a@b", "http://h.test/x", "", " ", "main",
                     "12#*wW,", "\u0000", "\ud83d\ude00", "+" + "9" * 70]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12)


@st.composite
def objects(draw) -> bytes:
    """A JSON object of the real field names, some good, some odd."""
    body = {}
    for name in draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=8)):
        body[name] = draw(st.one_of(st.just(GOOD.get(name, "x")), json_values))
    return json.dumps(body).encode()


@st.composite
def deep(draw) -> bytes:
    n = draw(st.one_of(st.sampled_from([31, 32, 33, 999, 1000, 3000, 20000]),
                       st.integers(1, 5000)))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'{"agent":[', b"]}")]))
    core = draw(st.sampled_from([b"1", b"", b'"x"', b"{}"]))
    return b'{"customer": "+12025550143", "x": ' * draw(st.integers(0, 1)) + \
        opener * n + core + closer * draw(st.integers(0, n))


@st.composite
def numbers_text(draw) -> bytes:
    digits = draw(st.integers(1, 6000))
    number = draw(st.sampled_from([b"9" * digits, b"1e" + str(digits).encode(), b"-1e999",
                                   b"NaN", b"Infinity", b"-Infinity", b"0." + b"0" * digits + b"1",
                                   b"1e-999", b"-0"]))
    field = draw(st.sampled_from(["timeout", "max_duration", "agent", "variables", "reason"]))
    return b'{"agent": "2001", "customer": "+12025550143", "to": "+12025550143", ' \
           b'"flow": "main", "' + field.encode() + b'": ' + number + b"}"


@st.composite
def broken_utf8(draw) -> bytes:
    raw = bytearray(draw(objects()))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(raw)))
        raw[at:at] = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                                           b"\xc0\xaf", b"\x00", b"\\ud800", b"\\udc00\\ud800"]))
    return bytes(raw)


@st.composite
def big(draw) -> bytes:
    size = draw(st.one_of(st.integers(MAX_BODY - 8, MAX_BODY + 8),
                          st.integers(MAX_BODY, 4 * MAX_BODY)))
    head = draw(objects())
    filler = draw(st.sampled_from([b" ", b"[", b"x", b'"']))
    return (head + filler * size)[:size]


bodies = st.one_of(objects(), deep(), numbers_text(), broken_utf8(), big(), st.binary(max_size=300),
                   json_values.map(lambda v: json.dumps(v).encode()), st.just(b""))

_BAD_ESCAPES = ["%ff", "%", "%z", "%zz", "%c3%28", "%ed%a0%80", "%00", "%2F", "%2e%2e", "%C3%A9",
                "%25", "%"]


@st.composite
def segment(draw, env_ids) -> str:
    """One path segment, as it goes on the wire (percent-encoded where it must be)."""
    return draw(st.one_of(
        st.sampled_from(env_ids + ["+12025550143", "2001", "..", ".", "", "x" * 300]),
        st.text(max_size=40).map(lambda t: quote(t, safe="")),
        st.lists(st.one_of(st.sampled_from(_BAD_ESCAPES),
                           st.text("abc+09 ", max_size=3).map(lambda t: quote(t, safe="+"))),
                 max_size=5).map("".join)))


@st.composite
def query(draw) -> str:
    pairs = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.one_of(st.sampled_from(QUERY_NAMES), st.sampled_from(_BAD_ESCAPES)))
        value = draw(st.one_of(
            st.sampled_from(["", "csv", "json", "busy", "0", "-1", "1e999", "nan", "9" * 5000,
                             "2024-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59", "US", "gb",
                             "+12025550143", "%2B12025550143", "0001-01-01T00:00:00+23:59"]),
            st.text(max_size=30).map(lambda t: quote(t, safe="")),
            st.sampled_from(_BAD_ESCAPES)))
        pairs.append(f"{name}={value}" if draw(st.booleans()) else name)
    return "&".join(pairs)


def target(rule: str, seg: str, q: str) -> bytes:
    path = re.sub(r"<[^>]+>", lambda m: seg, rule)
    return (path + ("?" + q if q else "")).encode("ascii")


keys = st.sampled_from([DEV_KEY, DEV_KEY, None, "wrong-key"])


# -- the property ------------------------------------------------------------------------

def check(wire, method: str, tgt: bytes, body: bytes | None, key: str | None) -> None:
    headers = {b"Content-Type": b"application/json"}
    if key is not None:
        headers[b"X-API-Key"] = key.encode()
    with ErrorLog() as errors:
        r = wire.request(method.encode(), tgt, body, headers)
    assert r.code < 500, r
    if (r.code >= 400 and tgt.split(b"?")[0].split(b"/")[1] == b"builder"
            and r.header("Content-Type") == b"text/html; charset=utf-8"):
        pass  # the Flow Builder's pages and sign-in form talk to a person in a browser:
        # their refusals may be HTML pages (the sign-in form with its reason)
    elif r.code >= 400:
        assert r.header("Content-Type") == b"application/json", r
        error = r.json["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str), r
    else:
        assert 200 <= r.code < 300, r
    assert errors.records == [], (r, errors.records)


def ids(env) -> list[str]:
    """Four ids of things that exist now (sessions, legs), padded to a fixed length: the
    strategies draw a position, never from a list whose length depends on earlier examples
    (hypothesis replays a failure and needs the same choices)."""
    found = [s.id for s in env.api.sessions.all()][:2] + [leg.id for leg in env.tel.all][:2]
    return (found + ["nobody"] * 4)[:4]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(data=st.data(), body=bodies, key=keys)
def test_any_body_to_any_endpoint(world, data, body, key):
    env, wire, table = world
    with_body = [(m, rule) for m, rule in table if m in ("POST", "PUT")]
    method, rule = data.draw(st.one_of(st.sampled_from(with_body), st.sampled_from(table)))
    seg = data.draw(st.sampled_from(ids(env) + ["+12025550143", "2001", "nobody"]))
    check(wire, method, target(rule, seg, ""), body, key)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), q=query(), key=keys, with_body=st.booleans())
def test_any_path_and_query_to_any_endpoint(world, data, q, key, with_body):
    env, wire, table = world
    method, rule = data.draw(st.sampled_from(table + [("GET", "/<x>"), ("POST", "/v1/<x>"),
                                                      ("PATCH", "/v1/calls")]))
    seg = data.draw(segment(ids(env)))
    body = data.draw(objects()) if with_body else None
    check(wire, method, target(rule, seg, q), body, key)
