"""GET/DELETE /v1/security/bans in a farm: the list is every node's bans (from the shared
database, ivr/store/bans.py), and a lift ends the ban in the database and on this node."""
from __future__ import annotations

import pytest

from ivr.sip.throttle import Ban
from ivr.store.bans import FarmBans
from ivr.store.db import Database

from .test_security_bans import BansEnv


class FarmEnv(BansEnv):
    def __init__(self, tmp_path):
        super().__init__(tmp_path)
        db = Database(tmp_path / "farm.sqlite3", threaded=False)
        limits = dict(max_failures=2, window=60.0, ban_time=300.0)
        self.api.farm_bans = FarmBans(db, "a", **limits)
        self.other = FarmBans(db, "b", **limits)   # another node, same database


@pytest.fixture
def env(tmp_path):
    return FarmEnv(tmp_path)


def result(d):
    out = []
    d.addBoth(out.append)
    return out[0]


def test_the_list_shows_the_farms_bans(env):
    now = env.clock.seconds()
    result(env.other.exchange(bans=[Ban("192.0.2.9", 2, now, now + 300)], now=now))
    r = env.request("GET", "/v1/security/bans")
    assert r.code == 200 and r.json == {"bans": [
        {"address": "192.0.2.9", "failures": 2, "since": now, "until": now + 300}]}


def test_a_lift_ends_the_ban_in_the_farm_and_here(env):
    now = env.clock.seconds()
    env.ban("192.0.2.9")                                  # here, and written through
    result(env.api.farm_bans.exchange(bans=env.throttle.take_journal().bans or
                                      [Ban("192.0.2.9", 2, now, now + 300)], now=now))
    r = env.request("DELETE", "/v1/security/bans/192.0.2.9")
    assert r.code == 200 and r.json["address"] == "192.0.2.9"
    assert not env.throttle.is_banned("192.0.2.9", now)
    assert result(env.other.bans(now)) == []
    assert env.request("DELETE", "/v1/security/bans/192.0.2.9").code == 404
    env.ban("192.0.2.10")                                 # only here (not written yet)
    r = env.request("DELETE", "/v1/security/bans/192.0.2.10")
    assert r.code == 200 and r.json["address"] == "192.0.2.10"
    assert env.request("DELETE", "/v1/security/bans/not-an-address").code == 404


def test_the_list_has_this_nodes_ban_before_its_round_shares_it(env):
    """A ban this node just decided is listed at once (the database has it only after the
    next housekeeping round), and not twice once it is shared."""
    env.ban("192.0.2.10")                                 # here, not written yet
    listed = env.request("GET", "/v1/security/bans").json["bans"]
    assert [b["address"] for b in listed] == ["192.0.2.10"]
    now = env.clock.seconds()
    result(env.api.farm_bans.exchange(bans=env.throttle.take_journal().bans, now=now))
    listed = env.request("GET", "/v1/security/bans").json["bans"]
    assert [b["address"] for b in listed] == ["192.0.2.10"]
