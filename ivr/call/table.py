"""The one owner of every call leg's life (STYLE rule 13).

Invariant: every leg that is created -- an INVITE that reached the dialplan, whatever
happens to it next (no route, a bad offer, a ``reject`` step, a dial that fails at once,
no free RTP port, CANCEL, an exception in a verb), and every outbound leg we dial -- is
added here *before* anything can end it, and leaves exactly once when it ends: it is
removed from the table, gets one CDR (with the final SIP status and reason), the metrics
are updated, and its RTP ports were released by :meth:`Call._end`.

Leg ids are the SIP Call-ID.  Two live legs can share a Call-ID (a forking proxy, or a
peer that reuses one), so a leg whose Call-ID is already in the table gets a numbered
suffix (``<call-id>;2``): neither leg can shadow or remove the other.
"""
from __future__ import annotations

from typing import Callable, Iterator

from twisted.logger import Logger

from .records import call_summary

log = Logger(namespace="ivr.call")


class CallTable:
    def __init__(self, cdrs=None, metrics=None,
                 on_ended: Callable[[object], None] | None = None) -> None:
        self.cdrs = cdrs
        self.metrics = metrics
        self.on_ended = on_ended  # a test or the server may watch ends (after the records)
        self._calls: dict[str, object] = {}
        self.started = 0
        self.ended = 0

    def add(self, call) -> None:
        """Take ownership of ``call``.  A leg that already ended (nothing should end
        before it is added, but the invariant must hold even then) is recorded at once."""
        if getattr(call, "_table", None) is not None:
            return  # already owned: adding twice must not count twice
        call._table = self
        leg_id = call.id
        if leg_id in self._calls:
            n = 2
            while f"{leg_id};{n}" in self._calls:
                n += 1
            call.leg_id = leg_id = f"{leg_id};{n}"
        self.started += 1
        if self.metrics is not None:
            self.metrics.call_started()
        if call.ended:
            self._ended(call)
            return
        self._calls[leg_id] = call
        call.on_end.append(self._ended)

    def _ended(self, call) -> None:
        if self._calls.get(call.id) is call:
            del self._calls[call.id]
        self.ended += 1
        summary = call_summary(call)
        if self.metrics is not None:
            self.metrics.call_ended(summary["flow"], summary["outcome"])
        if self.cdrs is not None:
            self.cdrs.record(summary).addErrback(
                lambda f: log.failure("CDR for {cid} not written", f, cid=call.id))
        if self.on_ended is not None:
            self.on_ended(call)

    # -- reading -----------------------------------------------------------------------
    def get(self, leg_id: str):
        return self._calls.get(leg_id)

    def values(self):
        return self._calls.values()

    def __len__(self) -> int:
        return len(self._calls)

    def __iter__(self) -> Iterator[str]:
        return iter(self._calls)

    def __contains__(self, leg_id) -> bool:
        return leg_id in self._calls
