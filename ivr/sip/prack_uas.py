"""The UAS core's reliable provisional responses for one INVITE (RFC 3262 3).

:class:`ReliableProvisionals` numbers each reliable 1xx (RSeq, Require: 100rel), sends
at most one unacknowledged at a time (later ones wait in order), re-sends it through the
INVITE server transaction as :class:`ivr.sip.prack.ReliableProvisional` says, matches
PRACKs by RAck and reports 64*T1 without a PRACK.  It holds no Twisted import: the clock
and the send function are given.
"""
from __future__ import annotations

import random
from typing import Callable

from .message import Response
from .prack import NoPrack, ReliableProvisional, parse_rack
from .action_timers import ActionTimers
from .timers import TimerConfig
from .transaction import Send

#: At most this many reliable 1xx wait behind an unacknowledged one.
MAX_QUEUED = 4


class ReliableProvisionals:
    def __init__(self, clock, timers: TimerConfig, send: Callable[[Response], None],
                 on_no_prack: Callable[[], None], invite_cseq: int,
                 reliable_transport: bool = False, first_rseq: int | None = None) -> None:
        self.timers = timers
        self.send_response = send
        self.on_no_prack = on_no_prack
        self.invite_cseq = invite_cseq
        self.reliable_transport = reliable_transport
        # RFC 3262 3: the first RSeq is chosen at random in 1..2**31-1.
        self.next_rseq = first_rseq if first_rseq is not None else random.randint(1, 2**16)
        self.current: ReliableProvisional | None = None
        self.queued: list[Response] = []
        self.unacked: dict[int, ReliableProvisional] = {}  # RSeq -> sent, not PRACKed
        self.slots = ActionTimers(clock, self._fired)

    @property
    def blocks_2xx(self) -> bool:
        """RFC 3262 3: no 2xx while a reliable 1xx with SDP is unacknowledged."""
        return any(p.has_sdp for p in self.unacked.values()) or any(
            r.body for r in self.queued)

    def send(self, response: Response) -> None:
        """``response`` (a 101..199 without RSeq) made reliable and sent, or queued
        behind the one awaiting its PRACK."""
        response.headers.add("Require", "100rel")
        response.headers.add("RSeq", str(self.next_rseq))
        self.next_rseq += 1
        if self.current is not None and self.current.waiting:
            if len(self.queued) >= MAX_QUEUED:
                self.queued.pop(0)
            self.queued.append(response)
            return
        self._start(response)

    def _start(self, response: Response) -> None:
        self.current = ReliableProvisional(response, self.timers, self.reliable_transport)
        self.unacked[self.current.rseq] = self.current
        self._run(self.current.start())

    def prack(self, rack_value: str | None) -> ReliableProvisional | None:
        """The provisional a PRACK's RAck acknowledges, or ``None`` (answer 481)."""
        rack = parse_rack(rack_value)
        if rack is None:
            return None
        rseq, cseq, method = rack
        provisional = self.unacked.get(rseq)
        if provisional is None or cseq != self.invite_cseq or method != "INVITE":
            return None
        del self.unacked[rseq]
        if provisional is self.current and provisional.waiting:
            self._run(provisional.prack_received())
        return provisional

    def send_queued(self) -> None:
        """After the 200 to a PRACK: the next reliable 1xx that waited, if any."""
        if self.queued and not (self.current is not None and self.current.waiting):
            self._start(self.queued.pop(0))

    def stop(self) -> None:
        """The INVITE's final response went out, or the call ended."""
        self.queued.clear()
        if self.current is not None and self.current.waiting:
            self._run(self.current.stop())
        self.slots.cancel_all()

    def _run(self, actions: list) -> None:
        for action in self.slots.run(actions):
            if isinstance(action, Send):
                self.send_response(action.message)
            elif isinstance(action, NoPrack):
                self.queued.clear()
                self.on_no_prack()

    def _fired(self, name) -> None:
        if self.current is not None:
            self._run(self.current.timer_fired(name))
