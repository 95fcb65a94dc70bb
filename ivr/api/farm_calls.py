"""``GET /v1/calls`` in a farm (PostgreSQL mode): this node's calls and every other node's.

:meth:`FarmCalls.publish` (``ivr serve``'s housekeeping, every 2 s) writes this node's
calls as the API describes them (:class:`ivr.store.node_calls.NodeCalls`);
:meth:`FarmCalls.listing` adds the other nodes' to this node's own, each call with the
``node`` that holds it; :meth:`FarmCalls.find` is ``GET /v1/calls/{id}`` of a call this
node does not hold.  Another node's calls are at most one round (2 s) old.
"""
from __future__ import annotations

from twisted.internet.defer import Deferred


class FarmCalls:
    def __init__(self, api, store) -> None:
        self.api, self.store = api, store
        self._publishing = False

    def local(self) -> list[dict]:
        node = self.store.node
        return [{**self.api.calls.describe(info), "node": node}
                for info in self.api.telephony.legs()]

    def publish(self) -> Deferred | None:
        """Write this node's calls (skipped while the previous write is still going)."""
        if self._publishing:
            return None
        self._publishing = True

        def done(result):
            self._publishing = False
            return result
        d = self.store.publish(self.local(), self.api.clock.seconds())
        return d.addBoth(done).addErrback(lambda f: None)   # retried next round

    def find(self, call_id: str) -> Deferred:
        """Another node's call ``call_id`` (with its ``node``), or None (not listed by
        any live node, or the database cannot be read)."""
        def pick(others: list[dict]) -> dict | None:
            return next((c for c in others if str(c.get("id")) == call_id), None)
        return self.store.others(self.api.clock.seconds()).addCallbacks(pick, lambda f: None)

    def listing(self) -> Deferred:
        """Every node's calls; this node's own when the database cannot be read."""
        mine = self.local()
        d = self.store.others(self.api.clock.seconds())
        return d.addCallbacks(lambda others: mine + others, lambda f: mine)
