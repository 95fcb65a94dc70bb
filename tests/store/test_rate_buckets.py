"""Rate limits shared by a farm (ivr/store/rate_buckets.py): two simulated nodes on one
throwaway PostgreSQL, each with its own limiters on one task.Clock.  However a client
spreads its requests over the nodes, the farm together admits at most the limit's rate
plus its burst; a dead node's share goes back to the live one."""
from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from ivr.api.errors import ApiError, RateLimiter
from ivr.call.visitors import VisitorLimits
from ivr.config.webrtc import WebrtcVisitorSettings
from ivr.store.node_liveness import NodeLiveness
from ivr.store.rate_buckets import FarmShare, node_share

from .test_cdr import result


@pytest.fixture
def farm(pg_url):
    from ivr.store.pg import PgDatabase
    dbs = [PgDatabase(pg_url, threaded=False) for _ in range(2)]
    yield dbs
    for db in dbs:
        db.close()


def two_nodes(dbs, clock):
    nodes = []
    for db, name in zip(dbs, "ab"):
        liveness = NodeLiveness(db, name)
        liveness.start(clock.seconds())
        nodes.append((liveness, FarmShare()))
    for liveness, share in nodes:
        assert result(share.refresh(liveness, clock.seconds())) == 2
    return nodes


def admitted(limiter, key="key:k", **limits) -> bool:
    try:
        limiter.check(key, **limits)
        return True
    except ApiError as err:
        assert err.status == 429
        return False


def test_node_share_splits_rate_and_burst_keeping_one_token():
    assert node_share(10.0, 20.0, 1) == (10.0, 20.0)
    assert node_share(10.0, 20.0, 4) == (2.5, 5.0)
    assert node_share(3 / 60, 3.0, 2) == (1.5 / 60, 1.5)
    assert node_share(3 / 60, 3.0, 4) == (0.75 / 60, 1.0)   # never below one request
    assert node_share(1.0, 0.5, 2) == (0.5, 0.25)            # a burst under one: as set
    assert node_share(1.0, 2.0, 0) == (1.0, 2.0)


def test_two_nodes_together_never_exceed_the_api_keys_rate_plus_burst(farm):
    clock = Clock()
    clock.advance(1_700_000_000.0)
    nodes = two_nodes(farm, clock)
    limiters = [RateLimiter(5.0, 20.0, clock, share=share) for _, share in nodes]
    rate, burst, seconds = 5.0, 20.0, 30
    allowed = 0
    for step in range(seconds * 100):          # 100 requests/s to each node
        for limiter in limiters:
            allowed += admitted(limiter)
        clock.advance(0.01)
    assert allowed <= rate * seconds + burst
    assert allowed >= rate * seconds            # and the farm still gives the whole rate
    # one node alone (all requests there) gets its share: half
    clock.advance(60.0)
    alone = sum(admitted(limiters[0]) for _ in range(100))
    assert alone == 10


def test_a_per_key_limit_is_shared_too(farm):
    clock = Clock()
    nodes = two_nodes(farm, clock)
    limiters = [RateLimiter(5.0, 20.0, clock, share=share) for _, share in nodes]
    got = sum(admitted(limiter, rate=1.0, burst=4.0) for limiter in limiters for _ in range(10))
    assert got == 4


def test_a_dead_nodes_share_goes_back_to_the_live_one(farm):
    clock = Clock()
    clock.advance(1_700_000_000.0)
    (la, sa), (lb, sb) = two_nodes(farm, clock)
    limiter = RateLimiter(2.0, 10.0, clock, share=sa)
    assert sum(admitted(limiter) for _ in range(20)) == 5
    for _ in range(6):                           # b stops beating; a goes on every 2 s
        clock.advance(2.0)
        result(la.beat(clock.seconds()))
        result(sa.refresh(la, clock.seconds()))
    assert sa.nodes == 1
    assert sum(admitted(limiter) for _ in range(20)) == 5    # full at the old share ...
    clock.advance(5.0)
    assert sum(admitted(limiter) for _ in range(20)) == 10   # ... now the whole burst
    clock.advance(1.0)
    assert sum(admitted(limiter) for _ in range(20)) == 2    # and the whole rate


def test_webrtc_visitors_spreading_invites_over_two_nodes(farm):
    clock = Clock()
    clock.advance(1_700_000_000.0)
    nodes = two_nodes(farm, clock)
    settings = WebrtcVisitorSettings(calls_per_minute=6, targets=["echo"])
    limits = [VisitorLimits(settings, clock, share=share) for _, share in nodes]
    allowed, minutes = 0, 5
    for _ in range(minutes * 60):
        for limit in limits:
            allowed += limit.refusal("198.51.100.7", "sip:echo@example.com") is None
        clock.advance(1.0)
    assert 6 * minutes <= allowed <= 6 * minutes + 6


def test_outside_a_farm_the_limits_are_as_configured():
    clock = Clock()
    limiter = RateLimiter(5.0, 20.0, clock, share=FarmShare())
    assert sum(admitted(limiter) for _ in range(30)) == 20
    plain = RateLimiter(5.0, 20.0, clock)
    assert sum(admitted(plain) for _ in range(30)) == 20
