"""Rate limits a farm shares: every node's token buckets hold its share of the limit.

A limit (an API key's ``rate``/``burst``, the demo page's calls per visitor, a WebRTC
visitor's calls per minute) is configured for the whole service.  With N nodes answering,
a bucket per node would let a client through N times over, so in PostgreSQL mode each node
refills its buckets at ``rate / N`` up to ``burst / N``, N being the live nodes of
``node_heartbeats`` (:class:`ivr.store.node_liveness.NodeLiveness`), read again every
housekeeping round.  However a client's requests are spread, the farm admits at most
``rate`` per second plus ``burst`` at once.

Why a share and not one bucket row per key (``UPDATE ... RETURNING`` per request): the
limits are checked where no database read may run -- the SIP visitor gate answers an
INVITE on the reactor thread, and the API's handlers check the key synchronously before
they do anything -- and a share costs no round trip at all.  What it costs: a client whose
requests all reach one node gets ``1/N`` of its rate there (the load balancer in front,
round robin or Kamailio's dispatcher, spreads them); a node that joins is counted by the
others within one round (2 s), during which the farm may admit up to one extra share; a
dead node's share goes back to the others once it is counted dead (10 s).

A bucket never holds less than one token when the configured burst is at least one: a
share of 0.75 of a token would refuse everything.  So with more live nodes than ``burst``
the farm's burst is one request per node (its rate stays exact).
"""
from __future__ import annotations

from twisted.internet.defer import Deferred


def node_share(rate: float, burst: float, nodes: int) -> tuple[float, float]:
    """``(rate, burst)`` of one node's bucket out of ``nodes`` live nodes."""
    nodes = max(1, int(nodes))
    share = burst / nodes
    return rate / nodes, (max(share, 1.0) if burst >= 1.0 else share)


class FarmShare:
    """How many nodes share the farm's limits now (1 outside a farm, and until the first
    :meth:`refresh`).  ``limits()`` scales a limit for a bucket of this node."""

    def __init__(self, nodes: int = 1) -> None:
        self.nodes = max(1, int(nodes))

    def limits(self, rate: float, burst: float) -> tuple[float, float]:
        return node_share(rate, burst, self.nodes)

    def refresh(self, liveness, now: float) -> Deferred:
        """Housekeeping: count the live nodes (``NodeLiveness.nodes``; this one included:
        it has just beaten).  Fires with the count."""
        def counted(nodes: dict) -> int:
            self.nodes = max(1, sum(1 for alive in nodes.values() if alive))
            return self.nodes
        return liveness.nodes(now).addCallback(counted)
