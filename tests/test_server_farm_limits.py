"""ivr serve's housekeeping keeps the farm's shared limits current (PostgreSQL mode): the
rate limits' share of the live nodes is counted every round; a single node never counts."""
from __future__ import annotations

from unittest.mock import MagicMock

from ivr.server import IvrServer

NOW = 1_700_000_000.0


def server(farm: bool):
    s = MagicMock(queues=None, _late_ticks_seen=0)
    if not farm:
        s.shared_location = None
    s.reactor.seconds.return_value = NOW
    s.media_clock.late_ticks = 0
    return s


def test_housekeeping_counts_the_live_nodes_for_the_rate_limits():
    farm = server(farm=True)
    IvrServer._housekeep(farm)
    farm.farm_share.refresh.assert_called_once_with(farm.liveness, NOW)
    single = server(farm=False)
    IvrServer._housekeep(single)
    single.farm_share.refresh.assert_not_called()


def test_housekeeping_writes_the_ban_journal_and_holds_the_farms_bans(tmp_path):
    from twisted.internet.defer import Deferred
    from twisted.internet.task import Clock

    from ivr.server_farm import share_bans as _share_bans
    from ivr.sip.throttle import Ban, Throttle
    from ivr.store.bans import FarmBans
    from ivr.store.db import Database

    clock = Clock()
    clock.advance(NOW)
    db = Database(tmp_path / "farm.sqlite3", threaded=False)
    limits = dict(max_failures=2, window=60.0, ban_time=300.0)
    other = FarmBans(db, "b", **limits)
    other.exchange(bans=[Ban("192.0.2.1", 2, NOW, NOW + 300)], now=NOW)
    node = MagicMock(reactor=clock, throttle=Throttle(**limits, shared=True),
                     farm_bans=FarmBans(db, "a", **limits), _bans_exchange=None)
    for _ in range(2):
        node.throttle.failure("192.0.2.2", NOW)
    _share_bans(node, NOW)
    assert node.throttle.banned(NOW) == ["192.0.2.1", "192.0.2.2"]
    assert [row[0] for row in other.bans(NOW).result] == ["192.0.2.1", "192.0.2.2"]
    assert node._bans_exchange is None
    # an exchange still running: the next round waits for it; a failed one is kept
    pending = Deferred()
    node.farm_bans = MagicMock(**{"exchange.return_value": pending})
    node.throttle.failure("192.0.2.3", NOW)
    _share_bans(node, NOW)
    _share_bans(node, NOW)
    assert node.farm_bans.exchange.call_count == 1
    pending.errback(RuntimeError("database down"))
    assert node._bans_exchange is None
    assert [a for a, _ in node.throttle.take_journal().failures] == ["192.0.2.3"]


def test_housekeeping_shares_bans_only_in_a_farm():
    farm = server(farm=True)
    farm._bans_exchange = None
    IvrServer._housekeep(farm)
    farm.farm_bans.exchange.assert_called_once()
    single = server(farm=False)
    IvrServer._housekeep(single)
    single.farm_bans.exchange.assert_not_called()
