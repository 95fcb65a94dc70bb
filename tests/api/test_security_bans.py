"""GET /v1/security/bans and DELETE /v1/security/bans/{address}: the SIP failure bans."""
from __future__ import annotations

import pytest
from treq.testing import StubTreq

from ivr.api.app import make_api
from ivr.api.config import ApiConfig
from ivr.sip.throttle import Throttle

from .harness import DEV_KEY, Env


class BansEnv(Env):
    """The harness's API, given a Throttle on the same clock, as ivr/server.py does."""

    def __init__(self, tmp_path):
        super().__init__(tmp_path)
        self.log = []
        self.throttle = Throttle(max_failures=2, window=60, ban_time=300,
                                 log=lambda fmt, **kw: self.log.append(kw["address"]))
        self.resource = make_api(self.tel, self.store, self.webhooks, ApiConfig(), self.clock,
                                 environ={"IVR_API_KEY": DEV_KEY}, throttle=self.throttle)
        self.api = self.resource.api
        self.http = StubTreq(self.resource)

    def ban(self, host):
        now = self.clock.seconds()
        self.throttle.failure(host, now)
        assert self.throttle.failure(host, now)


@pytest.fixture
def env(tmp_path):
    return BansEnv(tmp_path)


def test_list_bans_as_json(env):
    assert env.request("GET", "/v1/security/bans").json == {"bans": []}
    t0 = env.clock.seconds()
    env.ban("192.0.2.9")
    env.clock.advance(10)
    env.ban("2001:db8::7")
    r = env.request("GET", "/v1/security/bans")
    assert r.code == 200 and r.header("Content-Type") == "application/json"
    assert r.json == {"bans": [
        {"address": "192.0.2.9", "failures": 2, "since": t0, "until": t0 + 300},
        {"address": "2001:db8::7", "failures": 2, "since": t0 + 10, "until": t0 + 310}]}
    env.clock.advance(291)  # the first ran out
    assert [b["address"] for b in env.request("GET", "/v1/security/bans").json["bans"]] == \
        ["2001:db8::7"]


def test_lift_one_ban(env):
    env.ban("192.0.2.9")
    env.ban("192.0.2.10")
    r = env.request("DELETE", "/v1/security/bans/192.0.2.9")
    assert r.code == 200 and r.json["address"] == "192.0.2.9" and r.json["failures"] == 2
    assert not env.throttle.is_banned("192.0.2.9", env.clock.seconds())
    assert env.throttle.is_banned("192.0.2.10", env.clock.seconds())
    assert env.log == ["192.0.2.9", "192.0.2.10", "192.0.2.9"]  # two starts, one lift
    r = env.request("DELETE", "/v1/security/bans/192.0.2.9")
    assert r.code == 404 and r.error_code() == "not_found"
    assert r.json["error"]["message"] == "192.0.2.9 is not banned"


@pytest.mark.parametrize("written", ["2001:DB8:0::7", "[2001:db8::7]", "%5B2001:db8::7%5D"])
def test_lift_an_ipv6_ban_however_written(env, written):
    env.ban("2001:db8::7")
    r = env.request("DELETE", f"/v1/security/bans/{written}")
    assert r.code == 200 and r.json["address"] == "2001:db8::7"


@pytest.mark.parametrize("address", ["nobody", "999.1.1.1", "%00", "a" * 300, "192.0.2.1"])
def test_lifting_what_is_not_banned_is_a_json_404(env, address):
    r = env.request("DELETE", f"/v1/security/bans/{address}")
    assert r.code == 404 and r.error_code() == "not_found"


@pytest.mark.parametrize("method,path", [("GET", "/v1/security/bans"),
                                         ("DELETE", "/v1/security/bans/192.0.2.9")])
def test_both_need_the_api_key(env, method, path):
    env.ban("192.0.2.9")
    for key in (None, "wrong"):
        r = env.request(method, path, key=key)
        assert r.code == 401 and r.error_code() == "unauthorized"
    assert env.throttle.is_banned("192.0.2.9", env.clock.seconds())


def test_without_sip_there_are_no_bans(tmp_path):
    env = Env(tmp_path)  # make_api without a throttle
    assert env.request("GET", "/v1/security/bans").json == {"bans": []}
    assert env.request("DELETE", "/v1/security/bans/192.0.2.9").code == 404
