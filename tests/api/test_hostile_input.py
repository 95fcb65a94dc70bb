"""Issue #13: what a client sends never gets a 5xx or a logged traceback.

Each seen problem as a plain example first; the generated version is in
test_hostile_input_property.py.  Requests go through twisted.web's real HTTP parser
(``Wire``) so paths and bodies arrive exactly as a hostile client would send them.
"""
from __future__ import annotations

import json

import pytest

from ivr.api.limits import MAX_BODY, MAX_DEPTH, CappedRequest, nesting_depth

from .harness import DEV_KEY, Env
from .logs import ErrorLog
from .wire import Wire

KEY = {b"X-API-Key": DEV_KEY.encode()}
JSON = {b"Content-Type": b"application/json"}
C2C = {"agent": "2001", "customer": "+12025550143"}
BODY_ENDPOINTS = [(b"POST", b"/v1/click-to-call"), (b"POST", b"/v1/calls"),
                  (b"PUT", b"/v1/dnd/+12025550143"), (b"POST", b"/demo/api/click-to-call")]


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


@pytest.fixture
def wire(env):
    return Wire(env.resource, env.clock)


@pytest.fixture
def errors():
    with ErrorLog() as log:
        yield log


def assert_client_error(r, status, code):
    assert r.code == status, r
    assert r.header("Content-Type") == b"application/json"
    assert r.json["error"]["code"] == code
    assert isinstance(r.json["error"]["message"], str)


# -- seen: 1000-deep JSON gave 500 with a traceback ---------------------------------------

@pytest.mark.parametrize("method,path", BODY_ENDPOINTS)
def test_deeply_nested_json_is_400_not_500(wire, errors, method, path):
    deep = b"[" * 1000 + b"]" * 1000
    r = wire.request(method, path, deep, {**KEY, **JSON})
    assert_client_error(r, 400, "invalid_json")
    assert b"deep" in r.body
    assert errors.records == []


@pytest.mark.parametrize("method,path", BODY_ENDPOINTS)
def test_nested_inside_an_object_too(wire, errors, method, path):
    deep = b'{"number": "1", "agent": ' + b'{"a": ' * 100 + b"1" + b"}" * 101
    r = wire.request(method, path, deep, {**KEY, **JSON})
    assert_client_error(r, 400, "invalid_json")
    assert errors.records == []


def calls_body_nested(depth: int) -> bytes:
    """A good POST /v1/calls body whose arrays/objects nest ``depth`` deep in all."""
    inner = "1"
    for _ in range(depth - 2):          # the body's object and "variables" are 2 levels
        inner = "[" + inner + "]"
    return ('{"to": "+12025550143", "flow": "main", "variables": {"x": %s}}' % inner).encode()


def test_depth_limit_is_exact(env, errors):
    assert nesting_depth(calls_body_nested(MAX_DEPTH).decode()) == MAX_DEPTH
    assert env.request("POST", "/v1/calls", raw=calls_body_nested(MAX_DEPTH)).code == 201
    r = env.request("POST", "/v1/calls", raw=calls_body_nested(MAX_DEPTH + 1))
    assert r.code == 400 and r.error_code() == "invalid_json"
    assert str(MAX_DEPTH) in r.json["error"]["message"]
    assert errors.records == []


def test_brackets_inside_strings_do_not_count():
    assert nesting_depth('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}') == 1
    assert nesting_depth(r'["\"[[[[[[", ["x"]]') == 2
    assert nesting_depth('"unterminated [[[[') == 0


# -- seen: %ff in a path logged a CRITICAL traceback (and answered text/plain) -------------

@pytest.mark.parametrize("target", [
    b"/v1/calls/%ff", b"/v1/lookup/%ff", b"/v1/dnd/%ff", b"/v1/click-to-call/%c3%28",
    b"/demo/api/sessions/%ff", b"/%ff", b"/v1/calls/%zz", b"/v1/calls/%",
    b"/v1/calls/%f"])
def test_bad_percent_encoding_in_the_path_is_400_json(wire, errors, target):
    r = wire.request(b"GET", target, headers=KEY)
    assert_client_error(r, 400, "invalid_url")
    assert errors.records == []


@pytest.mark.parametrize("target", [
    b"/v1/lookup/+12025550143?region=%ff", b"/v1/cdrs?since=%ff", b"/v1/cdrs?%ff=1",
    b"/v1/cdrs?outcome=%zz", b"/v1/calls?x=%"])
def test_bad_encoding_in_the_query_is_400_json(wire, errors, target):
    r = wire.request(b"GET", target, headers=KEY)
    assert_client_error(r, 400, "invalid_url")
    assert errors.records == []


def test_good_encodings_still_work(wire):
    r = wire.request(b"GET", b"/v1/lookup/%2B1%20202%20555%200143?region=%55%53", headers=KEY)
    assert r.code == 200 and r.json["e164"] == "+12025550143"
    r = wire.request(b"GET", b"/v1/click-to-call/%C3%A9", headers=KEY)
    assert_client_error(r, 404, "not_found")
    assert "é" in r.json["error"]["message"]


def test_non_utf8_host_is_400_json(wire, errors):
    r = wire.send(b"GET /v1/calls HTTP/1.0\r\nHost: \xff\xfe\r\nX-API-Key: "
                  + DEV_KEY.encode() + b"\r\n\r\n")
    assert_client_error(r, 400, "invalid_host")
    assert errors.records == []


def test_a_request_line_that_is_not_http_never_reaches_the_api(wire, errors):
    # twisted.web's parser refuses these itself (a bare 400): documented, not ours to shape
    for raw in (b"G\xffT /v1/calls HTTP/1.0\r\n\r\n", b"GET /v1/calls/\xff HTTP/1.0\r\n\r\n"):
        assert wire.send(raw).code == 400
    assert errors.records == []


def test_doubled_slash_is_404_not_a_500_redirect(wire, errors):
    r = wire.request(b"GET", b"/v1//calls", headers=KEY)
    assert_client_error(r, 404, "not_found")
    assert errors.records == []


# -- the body cap -----------------------------------------------------------------------

@pytest.mark.parametrize("method,path", BODY_ENDPOINTS + [(b"GET", b"/v1/calls"),
                                                          (b"POST", b"/v1/nothing")])
def test_body_over_the_cap_is_413_json(wire, errors, method, path):
    r = wire.request(method, path, b" " * (MAX_BODY + 1), {**KEY, **JSON})
    assert_client_error(r, 413, "body_too_large")
    assert str(MAX_BODY) in r.json["error"]["message"]
    assert errors.records == []


def test_body_at_the_cap_is_read(wire):
    body = json.dumps(C2C).encode()
    body += b" " * (MAX_BODY - len(body))
    r = wire.request(b"POST", b"/v1/click-to-call", body, {**KEY, **JSON})
    assert r.code == 201


def test_chunked_body_over_the_cap_is_413(wire, errors):
    chunk = b"x" * 8192
    raw = (b"POST /v1/calls HTTP/1.1\r\nHost: x\r\nX-API-Key: " + DEV_KEY.encode()
           + b"\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n")
    raw += (b"2000\r\n" + chunk + b"\r\n") * (MAX_BODY // 8192 + 1) + b"0\r\n\r\n"
    r = wire.send(raw)
    assert r.code == 413
    assert errors.records == []


# CappedRequest (a Site's requestFactory) refuses while the body arrives

@pytest.fixture
def capped(env):
    return Wire(env.resource, env.clock, request_factory=CappedRequest)


def test_capped_request_refuses_a_big_content_length_before_the_body(capped, env, errors):
    head = (b"POST /v1/click-to-call HTTP/1.1\r\nHost: x\r\nX-API-Key: " + DEV_KEY.encode()
            + b"\r\nExpect: 100-continue\r\nContent-Length: 10000000000\r\n\r\n")
    r = capped.send(head + b"{" + b" " * 1000)        # the 10 GB never come
    assert r.status_line == b"HTTP/1.1 413 Payload Too Large"
    assert r.header("Content-Type") == b"application/json"
    assert r.json["error"]["code"] == "body_too_large"
    assert b"100 Continue" not in r.raw
    assert capped.last_transport.disconnecting
    assert env.api.sessions.all() == [] and errors.records == []


def test_capped_request_refuses_chunks_once_past_the_cap(capped, env):
    head = (b"POST /v1/click-to-call HTTP/1.1\r\nHost: x\r\nX-API-Key: " + DEV_KEY.encode()
            + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunks = (b"1000\r\n" + b" " * 0x1000 + b"\r\n") * (MAX_BODY // 0x1000 + 1)
    r = capped.send(head + chunks + b"0\r\n\r\n")
    assert r.code == 413 and r.json["error"]["code"] == "body_too_large"
    assert r.raw.count(b"HTTP/1.1") == 1                # the request never reached the API
    assert capped.last_transport.disconnecting


def test_capped_request_passes_a_body_at_the_cap(capped):
    body = json.dumps(C2C).encode()
    body += b" " * (MAX_BODY - len(body))
    r = capped.request(b"POST", b"/v1/click-to-call", body, {**KEY, **JSON})
    assert r.code == 201 and r.json["state"] == "ringing_agent"


# -- odd JSON ---------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b'{"agent": "2001", "customer": "\xff"}',                 # bad UTF-8 inside a string
    b'{"agent": "2001", "customer": "+12025550143", "whisper": "\\ud800"}',  # lone surrogate
    b'{"agent": "2001", "customer": "+12025550143", "timeout": NaN}',
    b'{"agent": "2001", "customer": "+12025550143", "timeout": Infinity}',
    b'{"agent": "2001", "customer": "+12025550143", "timeout": 1e999}',
    b'{"agent": "2001", "customer": "+12025550143", "timeout": ' + b"9" * 5000 + b"}",
    b"\xef\xbb\xbf" + json.dumps(C2C).encode(),              # a BOM is not JSON
    json.dumps(C2C).encode("utf-16"),
])
def test_odd_json_is_400(env, errors, raw):
    r = env.request("POST", "/v1/click-to-call", raw=raw)
    assert r.code == 400 and r.error_code() == "invalid_json", r.body
    assert errors.records == []


def test_paired_surrogates_are_fine(env):
    raw = json.dumps(dict(C2C, whisper="lead \U0001F600")).encode()   # "\ud83d\ude00"
    assert b"\\ud83d\\ude00" in raw
    assert env.request("POST", "/v1/click-to-call", raw=raw).code == 201


def test_surrogate_in_dnd_reason_does_not_reach_the_database(env, errors):
    r = env.request("PUT", "/v1/dnd/+12025550143", raw=b'{"reason": "\\udfff"}')
    assert r.code == 400 and r.error_code() == "invalid_json"
    assert env.request("GET", "/v1/dnd").json["numbers"] == []
    assert errors.records == []


# -- a bug of ours: 500, logged once with its traceback ------------------------------------

def test_our_own_bug_is_500_logged_once_with_traceback(env, wire, errors):
    def broken():
        raise RuntimeError("boom in legs()")
    env.tel.legs = broken
    r = wire.request(b"GET", b"/v1/calls", headers=KEY)
    assert r.code == 500 and r.json == {"error": {"code": "internal",
                                                  "message": "internal server error"}}
    assert b"boom" not in r.body
    assert len(errors.records) == 1
    assert "Traceback" in errors.records[0] and "boom in legs()" in errors.records[0]


# -- /health (ivr/server.py) answers every method, in JSON -----------------------------------

@pytest.fixture
def health_wire(env):
    from types import SimpleNamespace

    from ivr.server import _Health, _Root
    server = SimpleNamespace(_stopping=False, calls={}, media_clock=SimpleNamespace(late_ticks=3),
                             db=SimpleNamespace(available=True))
    return Wire(_Root(env.resource, _Health(server)), env.clock)


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"FOO"])
def test_health_other_methods_are_405_json_not_501(health_wire, errors, method):
    r = health_wire.request(method, b"/health", b"{}")
    assert_client_error(r, 405, "method_not_allowed")
    assert r.header("Allow") == b"GET, HEAD"
    assert errors.records == []


def test_health_get_and_head_unchanged(health_wire):
    r = health_wire.request(b"GET", b"/health")
    assert r.code == 200 and r.json == {"status": "ok", "calls": 0, "late_ticks": 3,
                                   "database": "ok"}
    r = health_wire.request(b"HEAD", b"/health")
    assert r.code == 200 and r.body == b""
    # everything else still goes to the API, behind its checks
    assert_client_error(health_wire.request(b"GET", b"/v1/calls/%ff"), 400, "invalid_url")
    assert health_wire.request(b"GET", b"/v1/dnd", headers=KEY).json == {"numbers": []}
