"""API keys, per-key rate limits on a Clock, and JSON errors."""
from __future__ import annotations

import pytest

from .harness import DEV_KEY, LIMITED_KEY, Env


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/click-to-call"), ("GET", "/v1/click-to-call"), ("POST", "/v1/calls"),
    ("GET", "/v1/calls"), ("GET", "/v1/calls/x"), ("DELETE", "/v1/calls/x"),
    ("GET", "/v1/cdrs"), ("GET", "/v1/lookup/+12025550143"), ("GET", "/v1/dnd"),
    ("PUT", "/v1/dnd/+12025550143"), ("DELETE", "/v1/dnd/+12025550143")])
def test_every_v1_endpoint_needs_a_key(env, method, path):
    r = env.request(method, path, key=None)
    assert r.code == 401 and r.error_code() == "unauthorized"
    assert r.header("WWW-Authenticate") == 'Bearer realm="ivr"'
    r = env.request(method, path, key="wrong")
    assert r.code == 401 and r.json["error"]["message"] == "invalid API key"


def test_key_in_header_or_bearer_and_env_key(env):
    assert env.request("GET", "/v1/dnd").code == 200
    r = env.request("GET", "/v1/dnd", key=None, headers={"Authorization": f"Bearer {DEV_KEY}"})
    assert r.code == 200
    assert env.request("GET", "/v1/dnd", key=LIMITED_KEY).code == 200


def test_no_keys_configured_means_no_access(tmp_path):
    from ivr.api.app import make_api
    from ivr.api.config import ApiConfig
    from treq.testing import StubTreq
    env = Env(tmp_path)
    res = make_api(env.tel, env.store, env.webhooks, ApiConfig(), env.clock, environ={})
    env.http = StubTreq(res)
    assert env.request("GET", "/v1/dnd").code == 401


def test_per_key_token_bucket_with_retry_after(env):
    # LIMITED_KEY: burst 2, 0.5 request/s
    assert [env.request("GET", "/v1/dnd", key=LIMITED_KEY).code for _ in range(2)] == [200, 200]
    r = env.request("GET", "/v1/dnd", key=LIMITED_KEY)
    assert r.code == 429 and r.error_code() == "rate_limited" and r.header("Retry-After") == "2"
    assert env.request("GET", "/v1/dnd").code == 200        # other keys unaffected
    env.clock.advance(1.9)
    assert env.request("GET", "/v1/dnd", key=LIMITED_KEY).code == 429
    env.clock.advance(0.1)
    assert env.request("GET", "/v1/dnd", key=LIMITED_KEY).code == 200
    assert env.request("GET", "/v1/dnd", key=LIMITED_KEY).code == 429
    env.clock.advance(10)   # refills only up to the burst
    assert [env.request("GET", "/v1/dnd", key=LIMITED_KEY).code for _ in range(3)] == [200, 200,
                                                                                       429]


def test_unknown_path_and_wrong_method_are_json(env):
    r = env.request("GET", "/v1/nothing-here")
    assert r.code == 404 and r.error_code() == "not_found"
    assert r.header("Content-Type") == "application/json"
    r = env.request("PATCH", "/v1/calls")
    assert r.code == 405 and r.error_code() == "method_not_allowed"
    assert set(r.header("Allow").split(", ")) >= {"GET", "POST"}


@pytest.mark.parametrize("raw,code", [
    (b"", "invalid_json"), (b"{not json", "invalid_json"), (b"[1, 2]", "invalid_json"),
    (b"\xff\xfe", "invalid_json"), (b"{}", "missing_field")])
def test_bad_bodies(env, raw, code):
    r = env.request("POST", "/v1/click-to-call", raw=raw)
    assert r.code == 400 and r.error_code() == code


def test_metrics_endpoint_needs_no_key_and_counts(env):
    env.api.metrics.dtmf_digit("rfc4733")
    env.api.metrics.prompt_lookup(True)
    env.api.metrics.late_ticks(3)
    env.api.metrics.call_started()
    env.api.metrics.call_started()
    env.api.metrics.call_ended("ext-2001", "answered")
    r = env.request("GET", "/metrics", key=None)
    assert r.code == 200 and r.header("Content-Type").startswith("text/plain")
    text = r.body.decode()
    assert 'ivr_dtmf_digits_total{mode="rfc4733"} 1.0' in text
    assert 'ivr_prompt_cache_lookups_total{result="hit"} 1.0' in text
    assert "ivr_media_clock_late_ticks_total 3.0" in text
    assert "ivr_active_calls 1.0" in text
    assert 'ivr_calls_total{outcome="answered",route="ext-2001"} 1.0' in text
    assert "ivr_webhook_failures_total 0.0" in text


def test_metrics_resource_for_mounting_elsewhere():
    from twisted.web.test.requesthelper import DummyRequest

    from ivr.api.metrics import Metrics
    m = Metrics()
    m.webhook_failed()
    req = DummyRequest([b""])
    body = m.resource().render_GET(req)
    assert b"ivr_webhook_failures_total 1.0" in body


def test_wrong_keys_from_one_address_are_limited(env):
    """Guessing keys: ten wrong ones from an address are answered 401, then 429 with
    Retry-After until the address's bucket refills (one guess per 6 s); a missing key is
    not a guess, and a right key from the same address still works."""
    codes = [env.request("GET", "/v1/dnd", key=f"guess-{i:04d}").code for i in range(10)]
    assert codes == [401] * 10
    r = env.request("GET", "/v1/dnd", key="guess-0010")
    assert r.code == 429 and r.error_code() == "rate_limited" and r.header("Retry-After") == "6"
    assert env.request("GET", "/v1/dnd", key=None).code == 401
    assert env.request("GET", "/v1/dnd").code == 200
    env.clock.advance(6)
    assert env.request("GET", "/v1/dnd", key="guess-0011").code == 401
    assert env.request("GET", "/v1/dnd", key="guess-0012").code == 429
