"""Registrations shared by the nodes of a farm (PostgreSQL mode).

:class:`SharedLocation` is the registrar's location service with two more duties:

* **write-through**: every binding this node adds, refreshes or removes (REGISTER, expiry 0,
  ``Contact: *``, eviction past ``max_contacts``, a closed connection) is written to the
  ``registrations`` table (:class:`ivr.store.registrations.RegistrationStore`) with this
  node's id;
* **a cached view of the farm**: :meth:`refresh` (run by ``ivr serve``'s housekeeping every
  2 s) reads every unexpired row and mirrors the other nodes' bindings into memory, so a
  lookup stays synchronous and node B finds a phone that registered through node A at most
  one refresh later.  A row that is gone (the phone de-registered through another node)
  goes from memory too, except the bindings this node has written since the read began
  (its own newer state wins until the next read).

What a node cannot reach is not mirrored: a WebSocket binding of another node (the
browser's connection ends there).  Writes that fail (database away) are retried at the
next refresh.  Expired rows are deleted by whichever node gets there first.
"""
from __future__ import annotations

import json
import math

from twisted.logger import Logger

from ..sip.registrar import Binding, LocationService, contact_key
from ..sip.transport import Source
from ..sip.uri import SipSyntaxError, parse_name_addr

log = Logger(namespace="ivr.call.farm")

#: Delete expired rows every this many refreshes.
EXPIRE_EVERY = 15
_UNREACHABLE_ELSEWHERE = ("WS", "WSS")


def key_text(key: tuple) -> str:
    return json.dumps(list(key))


def to_row(binding: Binding, node: str) -> dict:
    src = binding.received
    return {"aor": binding.aor, "contact_key": key_text(contact_key(binding.contact.uri)),
            "contact": str(binding.contact),
            "transport": getattr(src, "transport", None), "host": getattr(src, "host", None),
            "port": getattr(src, "port", None), "expires_at": binding.expires_at,
            "updated_at": binding.updated_at, "q": binding.q, "call_id": binding.call_id,
            "cseq": binding.cseq, "node": node,
            "path": json.dumps(list(binding.path)) if binding.path else None}


def from_row(row: dict) -> Binding | None:
    """The binding a row describes; None for a row that does not parse."""
    try:
        contact = parse_name_addr(row["contact"])
        path = tuple(json.loads(row["path"])) if row.get("path") else ()
    except (SipSyntaxError, ValueError, TypeError):
        return None
    src = (Source(row["transport"], row["host"], int(row["port"]))
           if row.get("transport") and row.get("host") and row.get("port") else None)
    return Binding(row["aor"], contact, float(row["expires_at"]), src, row.get("call_id") or "",
                   int(row.get("cseq") or 0), row.get("q"), float(row["updated_at"]),
                   path=path, node=row.get("node") or "")


class SharedLocation(LocationService):
    def __init__(self, store, clock, node: str) -> None:
        super().__init__()
        self.store, self.clock, self.node = store, clock, node
        self._inflight: dict[tuple, int] = {}   # (aor, key) -> writes not yet committed
        self._written: dict[tuple, int] = {}    # (aor, key) -> generation of the last write
        self._generation = 0
        self._dirty: set[tuple] = set()         # writes that failed: done again at refresh
        self._refreshing = False
        self._refreshes = 0
        self._failing = False

    # -- write-through (the registrar's changes) ---------------------------------------
    def put(self, binding: Binding, max_contacts: int) -> list[Binding]:
        evicted = super().put(binding, max_contacts)
        self._write(binding.aor, contact_key(binding.contact.uri))
        for old in evicted:
            self._write(old.aor, contact_key(old.contact.uri))
        return evicted

    def remove(self, aor: str, key: tuple) -> Binding | None:
        gone = super().remove(aor, key)
        if gone is not None:
            self._write(aor, key)
        return gone

    def clear(self, aor: str) -> list[Binding]:
        gone = super().clear(aor)
        for binding in gone:
            self._write(aor, contact_key(binding.contact.uri))
        return gone

    def _write(self, aor: str, key: tuple) -> None:
        """Write the current state of (aor, key): its row, or its absence."""
        ident = (aor, key)
        binding = self.get(aor, key)
        self._inflight[ident] = self._inflight.get(ident, 0) + 1
        self._dirty.discard(ident)
        try:
            d = (self.store.save(to_row(binding, self.node)) if binding is not None
                 else self.store.remove(aor, key_text(key)))
        except Exception as exc:  # noqa: BLE001 - a bad row must not break a REGISTER
            d = None
            self._failed(ident, exc)

        def done(result, failed=None):
            self._inflight[ident] -= 1
            if not self._inflight[ident]:
                del self._inflight[ident]
            self._generation += 1
            self._written[ident] = self._generation
            if failed is not None:
                self._failed(ident, failed.value)
            elif self._failing:
                self._failing = False
                log.info("registrations written to the database again")
        if d is None:
            done(None)
            return
        d.addCallbacks(done, lambda f: done(None, f))

    def _failed(self, ident: tuple, exc) -> None:
        self._dirty.add(ident)
        if not self._failing:
            self._failing = True
            log.warn("cannot write registrations to the database ({e}); kept in memory "
                     "and written again once it answers", e=exc)

    # -- the farm's view ---------------------------------------------------------------
    def refresh(self):
        """Read every node's bindings and mirror them (a Deferred; None while one runs)."""
        if self._refreshing:
            return None
        self._refreshing = True
        now = self.clock.seconds()
        for aor, key in list(self._dirty):
            self._write(aor, key)
        started = self._generation
        self._refreshes += 1
        if self._refreshes % EXPIRE_EVERY == 0:
            self.store.expire(now).addErrback(lambda f: None)
        d = self.store.current(now)

        def apply(rows):
            self._refreshing = False
            self._mirror(rows, started)

        def failed(f):
            self._refreshing = False
            return None  # the database is away: keep what we have
        return d.addCallbacks(apply, failed)

    def _busy(self, ident: tuple, started: int) -> bool:
        """This node wrote (aor, key) since the read began: its own state wins."""
        return ident in self._inflight or self._written.get(ident, 0) > started

    def _mirror(self, rows, started: int) -> None:
        seen = set()
        for row in rows:
            binding = from_row(dict(row))
            if binding is None:
                continue
            ident = (binding.aor, contact_key(binding.contact.uri))
            seen.add(ident)
            if self._busy(ident, started):
                continue
            theirs = binding.node != self.node
            if (theirs and not binding.path and binding.received is not None
                    and binding.received.transport in _UNREACHABLE_ELSEWHERE):
                continue  # a browser's WebSocket ends on the node it registered with
            mine = self.get(*ident)
            if mine is not None and mine.updated_at >= binding.updated_at:
                continue
            if not theirs and mine is None:
                binding = _as_local(binding)
            LocationService.put(self, binding, math.inf)
        for aor in list(self._bindings):
            for key, binding in list(self._bindings.get(aor, {}).items()):
                ident = (aor, key)
                if ident in seen or self._busy(ident, started):
                    continue
                LocationService.remove(self, aor, key)
        self._written = {k: g for k, g in self._written.items() if g > started}


def _as_local(binding: Binding) -> Binding:
    """A row this node wrote (before a restart): it is ours again."""
    from dataclasses import replace
    return replace(binding, node="")
