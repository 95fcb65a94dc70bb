"""``ivr serve`` in a farm (PostgreSQL): the parts a node adds when it shares its database.

A single node (SQLite) has none of this; ``IvrServer.farm`` is then None.  In a farm,
:class:`Farm` is built once the database is open and hands the server the farm's versions of
its parts: the registrations every node sees, heartbeats (a dead node's queue rows cleared),
the rate limits' share of the live nodes, the digest nonce secret, bans, CDRs marked with the
node, one queue line per queue, the webhook outbox, and the API's sessions, calls and limits.
:func:`housekeep` is the farm's part of every housekeeping round.
"""
from __future__ import annotations

from twisted.logger import Logger

from .api.farm_calls import FarmCalls
from .call.farm_location import SharedLocation
from .call.node import NodeCdrs
from .queue.farm import FarmQueueEngine
from .store.bans import FarmBans
from .store.db import StoreUnavailable
from .store.farm_secrets import SIP_NONCE, shared_secret
from .store.node_calls import NodeCalls
from .store.node_liveness import NodeLiveness
from .store.outbox import Outbox
from .store.queue_state import QueueState
from .store.rate_buckets import FarmShare
from .store.registrations import RegistrationStore
from .store.sessions import SessionStore

log = Logger(namespace="ivr.server")


class Farm:
    """This node's place in a farm over ``db``, as ``node_id``.  Construction starts the
    heartbeat (clearing this node's queue rows of a previous run), counts the live nodes
    for the rate limits and shares the registrations."""

    def __init__(self, db, node_id: str, reactor) -> None:
        self.db, self.node_id = db, node_id
        self.liveness = NodeLiveness(db, node_id)  # heartbeats; a dead node's rows cleared
        self.share = FarmShare()                     # rate limits split over the live nodes
        cleared = self.liveness.start(reactor.seconds())  # our previous life's queue rows
        if any(cleared.values()):
            log.info("node id {n}: cleared {c} caller(s) and {a} agent(s) of its previous "
                     "run from the queues", n=node_id, c=cleared["callers"],
                     a=cleared["agents"])
        self.share.refresh(self.liveness, reactor.seconds()).addErrback(
            log_failure("counting the live nodes"))
        self.location = SharedLocation(RegistrationStore(db, node_id), reactor, node_id)
        log.info("node id {n}: registrations shared through the database", n=node_id)

    def nonce_secret(self) -> bytes:
        """The digest nonce secret every node shares: a challenge from one node is answered
        on any other (Kamailio spreads requests; a node may die in between)."""
        return shared_secret(self.db, SIP_NONCE)

    def bans(self, security) -> FarmBans:
        """The bans the farm shares (``security``: the extensions' security settings)."""
        return FarmBans.from_settings(self.db, self.node_id, security)

    def cdrs(self, cdrs) -> NodeCdrs:
        """``cdrs`` recording each leg with the node's id (``extra.node``)."""
        return NodeCdrs(cdrs, self.node_id)

    def queue_engine(self, reactor, dialer, queues, **reach) -> FarmQueueEngine:
        """One line per queue, farm-wide."""
        return FarmQueueEngine(reactor, dialer, queues,
                               shared=QueueState(self.db, self.node_id), **reach)

    def outbox(self) -> Outbox:
        """Status webhooks through the database's outbox, sent by any live node."""
        return Outbox(self.db, self.node_id)

    def share_api(self, api, bans) -> None:
        """The API sees the farm's sessions, calls and bans; its per-key and demo limits
        take this node's share (ivr/store/rate_buckets.py)."""
        api.sessions.share(SessionStore(self.db, self.node_id))
        api.farm_calls = FarmCalls(api, NodeCalls(self.db, self.node_id))
        api.limiter.share = api.demo_limiter.share = self.share
        api.farm_bans = bans  # GET/DELETE /v1/security/bans: the farm's


def housekeep(server, now: float) -> None:
    """The farm's part of ``server``'s housekeeping round."""
    server.shared_location.refresh()  # other nodes' registrations (ivr/call/farm_location.py)
    server.api.api.sessions.poll_cancels()  # DELETEs of our sessions made on other nodes
    server.api.api.farm_calls.publish()     # our calls, for GET /v1/calls elsewhere
    server.liveness.beat(now).addCallbacks(_cleared, log_failure("heartbeat"))
    server.farm_share.refresh(server.liveness, now).addErrback(
        log_failure("counting the live nodes"))  # rate limits' share
    share_bans(server, now)  # bans decided anywhere hold here (ivr/store/bans.py)
    server.dnd.reload().addErrback(log_failure("DND reload"))  # other nodes' changes


def share_bans(server, now: float) -> None:
    """Housekeeping in a farm: write the throttle's journal, hold the farm's bans (one
    exchange at a time; a journal not written is kept for the next round)."""
    if server._bans_exchange is not None:
        return
    throttle = server.throttle
    journal = throttle.take_journal()

    def written(rows) -> None:
        throttle.apply_farm(rows, server.reactor.seconds())

    def failed(failure):
        throttle.requeue(journal)
        return failure

    def done(result):
        server._bans_exchange = None
        return result
    d = server._bans_exchange = server.farm_bans.exchange(
        journal.failures, journal.bans, journal.successes, now=now)
    d.addCallbacks(written, failed).addBoth(done).addErrback(log_failure("sharing bans"))


def _cleared(nodes: dict) -> None:
    """Log what :meth:`NodeLiveness.beat` cleared of dead nodes."""
    for node, cleared in nodes.items():
        log.info("node {n} is silent: cleared its {c} queued caller(s) and freed {a} agent(s)",
                 n=node, c=cleared["callers"], a=cleared["agents"])


def log_failure(what: str):
    """An errback logging ``what`` failed (an outage is logged once, by the database)."""
    def failed(failure) -> None:
        if not failure.check(StoreUnavailable):
            log.warn("{what} failed: {why}", what=what, why=failure.getErrorMessage())
    return failed
