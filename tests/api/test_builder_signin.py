"""Signing in to the Flow Builder: the form, the HttpOnly cookie, the guess limit, sign-out,
and the cross-site check on changes made with the cookie (builder_signin.py)."""
from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlencode

import pytest
from twisted.internet import task

from ivr.api import builder_signin
from ivr.dialplan.files import DialplanFiles
from ivr.dialplan.reload import DialplanStore

from .harness import DEV_KEY, LIMITED_KEY, Env, Response

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = {"Origin": "http://ivr.test"}   # the harness sends every request to http://ivr.test
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def env(tmp_path):
    plans = tmp_path / "dialplans"
    shutil.copytree(ROOT / "tests" / "data" / "builder_plans", plans)
    e = Env(tmp_path)
    e.plans = plans
    store = DialplanStore(plans, None, reactor=task.Clock(), use_inotify=False)
    assert store.reload() == []
    e.api.dialplan_files = DialplanFiles(plans, None, backups=tmp_path / "backups",
                                         reload=store.reload)
    return e


def sign_in(env, key, headers=ORIGIN):
    """The form's POST, its redirect not followed."""
    d = env.http.request("POST", "http://ivr.test/builder/sign-in", allow_redirects=False,
                         data=urlencode({"key": key}).encode(),
                         headers={k: [v] for k, v in {**FORM, **headers}.items()})
    env.http.flush()
    responses = []
    d.addBoth(responses.append)
    resp = responses[0]
    content = []
    resp.content().addBoth(content.append)
    env.http.flush()
    return Response(resp.code, resp.headers, content[0])


def cookie_of(response) -> str:
    return response.header("Set-Cookie")


def with_cookie(env, method, path, key=DEV_KEY, headers=None, **kw):
    return env.request(method, path, key=None,
                       headers={"Cookie": f"ivr_admin_key={key}", **(headers or {})}, **kw)


def test_no_key_shows_the_sign_in_form_not_json(env):
    r = env.request("GET", "/builder", key=None)
    assert r.code == 401
    assert r.header("Content-Type").startswith("text/html")
    assert b'<form method="post" action="/builder/sign-in">' in r.body
    assert b'name="key" type="password"' in r.body


def test_a_key_that_is_not_admin_gets_the_form_and_why(env):
    r = env.request("GET", "/builder", key=LIMITED_KEY)
    assert r.code == 403 and b"not an admin key" in r.body


def test_signing_in_sets_an_http_only_strict_cookie_and_opens_the_page(env):
    r = sign_in(env, DEV_KEY)
    assert r.code == 303 and r.header("Location") == "/builder"
    cookie = cookie_of(r)
    assert cookie.startswith(f"ivr_admin_key={DEV_KEY};")
    parts = {p.strip().lower() for p in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= parts
    assert "secure" not in parts   # served over plain HTTP here
    page = with_cookie(env, "GET", "/builder")
    assert page.code == 200 and b'id="sign-out"' in page.body
    assert page.header("Referrer-Policy") == "same-origin"  # so the page's PUTs carry Origin


def test_secure_cookie_behind_a_trusted_https_proxy(tmp_path):
    env = Env(tmp_path, trust_forwarded_for=True)
    r = sign_in(env, DEV_KEY, {**ORIGIN, "X-Forwarded-Proto": "https"})
    assert r.code == 303
    assert "secure" in {p.strip().lower() for p in cookie_of(r).split(";")}


def test_keys_with_any_character_survive_the_cookie(tmp_path):
    odd = "k;e y=%,\"x"  # cookie-unsafe characters
    env = Env(tmp_path)
    env.api.keys.keys[odd] = {"name": "odd", "admin": True}
    r = sign_in(env, odd)
    assert r.code == 303
    value = cookie_of(r).split(";")[0].split("=", 1)[1]
    assert ";" not in value and " " not in value
    assert with_cookie(env, "GET", "/builder", key=value).code == 200


@pytest.mark.parametrize("key,status,words", [
    ("wrong-key", 401, b"was not accepted"), (LIMITED_KEY, 403, b"not an admin key"),
    ("", 401, b"Paste your admin key")])
def test_a_refused_key_sets_no_cookie(env, key, status, words):
    r = sign_in(env, key)
    assert r.code == status and words in r.body
    assert r.header("Set-Cookie") is None


def test_guessing_is_limited_per_visitor(env):
    for i in range(builder_signin.ATTEMPTS):
        assert sign_in(env, f"guess-{i}").code == 401
    r = sign_in(env, DEV_KEY)   # even the right key is not looked at now
    assert r.code == 429 and r.header("Retry-After") and r.header("Set-Cookie") is None
    assert b"Too many attempts" in r.body
    env.clock.advance(builder_signin.REFILL)
    assert sign_in(env, DEV_KEY).code == 303


def test_guessing_through_the_cookie_uses_the_same_limit(env):
    for i in range(builder_signin.ATTEMPTS):
        assert with_cookie(env, "GET", "/v1/dialplans", key=f"guess-{i}").code == 401
    assert with_cookie(env, "GET", "/v1/dialplans").code == 429
    assert sign_in(env, DEV_KEY).code == 429


def test_sign_in_from_another_site_is_refused(env):
    for headers in ({"Origin": "http://evil.test"}, {"Origin": "null"}, {},
                    {"Referer": "http://evil.test/builder"}):
        r = sign_in(env, DEV_KEY, headers)
        assert r.code == 403 and r.header("Set-Cookie") is None, headers
    assert sign_in(env, DEV_KEY, {"Referer": "http://ivr.test/builder"}).code == 303


def test_sign_out_clears_the_cookie(env):
    r = with_cookie(env, "POST", "/builder/sign-out", headers=ORIGIN)
    assert r.code == 200 and b"signed out" in r.body
    cookie = cookie_of(r).lower()
    assert cookie.startswith("ivr_admin_key=;") and "max-age=0" in cookie
    assert "httponly" in cookie


def test_a_revoked_cookie_gets_the_form_and_is_cleared(env):
    r = with_cookie(env, "GET", "/builder", key="revoked-key")
    assert r.code == 401 and b"no longer accepted" in r.body
    assert "max-age=0" in cookie_of(r).lower()


def saved_body(env):
    doc = env.request("GET", "/v1/dialplans/tollfree.yaml")
    assert doc.code == 200
    return doc.json, doc.header("ETag")


def test_the_cookie_reads_and_saves_from_the_page_s_origin(env):
    r = with_cookie(env, "GET", "/v1/dialplans/tollfree.yaml")
    assert r.code == 200
    body, etag = saved_body(env)
    r = with_cookie(env, "PUT", "/v1/dialplans/tollfree.yaml", body={"document": body["document"]},
                    headers={**ORIGIN, "If-Match": etag})
    assert r.code == 200, r.body
    assert with_cookie(env, "GET", "/v1/builder/calls").code == 200


@pytest.mark.parametrize("headers", [
    {}, {"Origin": "http://evil.test"}, {"Origin": "null"},
    {"Referer": "http://evil.test/x"}, {"Origin": "http://ivr.test.evil.test"}])
def test_a_change_with_the_cookie_from_elsewhere_is_refused(env, headers):
    body, etag = saved_body(env)
    before = (env.plans / "tollfree.yaml").read_text()
    r = with_cookie(env, "PUT", "/v1/dialplans/tollfree.yaml", body={"document": body["document"]},
                    headers={**headers, "If-Match": etag})
    assert r.code == 403 and r.error_code() == "cross_site_request"
    assert (env.plans / "tollfree.yaml").read_text() == before
    restore = with_cookie(env, "POST", "/v1/dialplans/tollfree.yaml/backups/1/restore",
                          headers=headers)
    assert restore.code == 403 and restore.error_code() == "cross_site_request"


def test_the_cookie_is_only_a_key_on_the_builder_s_paths(env):
    assert with_cookie(env, "GET", "/v1/cdrs").code == 401
    assert with_cookie(env, "GET", "/v1/calls").code == 401


def test_api_calls_with_a_key_header_are_not_checked_for_origin(env):
    body, etag = saved_body(env)
    r = env.request("PUT", "/v1/dialplans/tollfree.yaml", body={"document": body["document"]},
                    headers={"If-Match": etag, "Origin": "http://elsewhere.test"})
    assert r.code == 200, r.body
