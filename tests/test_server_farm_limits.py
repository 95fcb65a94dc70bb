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
