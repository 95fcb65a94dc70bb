"""Reliable provisional responses (RFC 3262, "100rel" and PRACK), as pure pieces.

UAS side: :class:`ReliableProvisional` re-sends one reliable 1xx until its PRACK, first
after T1 and then doubling (RFC 3262 3 asks for plain doubling; unlike the 2xx it is not
capped at T2), and gives up 64*T1 after the first send with :class:`NoPrack` (the UA core
then rejects the INVITE with a 5xx, as 3 says it SHOULD).  The schedule is
:class:`ivr.sip.retransmit.Retransmitter`'s, as for the 2xx; no clock, no Twisted.

UAC side: :class:`RSeqTracker` decides which reliable 1xx to PRACK and which to discard
(a retransmission, or one that arrives out of order: RFC 3262 4).

Helpers: whether a message asks for / supports an option tag, and RAck parsing.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from .headers import Headers
from .message import Request, Response
from .timers import TimerConfig
from .retransmit import Retransmitter
from .transaction import Action, TransactionError

MAX_UINT32 = 2**32 - 1


class PrackTimer(enum.Enum):
    """RFC 3262 3 (unnamed there): the reliable 1xx's retransmit interval ..."""
    RETRANSMIT_1XX = "1xx-retransmit"
    #: ... and the 64*T1 wait after which the UAS gives up on the PRACK.
    PRACK_WAIT = "prack-wait"


@dataclass(frozen=True)
class NoPrack:
    """64*T1 passed without a PRACK: reject the INVITE with a 5xx (RFC 3262 3)."""


class ProvisionalState(enum.Enum):
    IDLE = "Idle"
    WAITING = "Waiting for PRACK"
    PRACKED = "PRACKed"
    GAVE_UP = "Gave up"
    STOPPED = "Stopped"


class _Input(enum.Enum):
    START = "start"
    PRACK = "PRACK"
    STOP = "stop"


class ReliableProvisional(Retransmitter):
    """Re-send ``response`` (a 101..199 with RSeq) until :meth:`prack_received`."""

    WHAT = "reliable 1xx"
    RETRANSMIT = PrackTimer.RETRANSMIT_1XX
    WAIT = PrackTimer.PRACK_WAIT
    TABLE = {
        (ProvisionalState.IDLE, _Input.START): ("_on_start", ProvisionalState.WAITING),
        (ProvisionalState.WAITING, PrackTimer.RETRANSMIT_1XX): ("_on_retransmit",
                                                              ProvisionalState.WAITING),
        (ProvisionalState.WAITING, PrackTimer.PRACK_WAIT): ("_on_give_up",
                                                          ProvisionalState.GAVE_UP),
        (ProvisionalState.WAITING, _Input.PRACK): ("_on_acknowledged", ProvisionalState.PRACKED),
        (ProvisionalState.WAITING, _Input.STOP): ("_on_acknowledged", ProvisionalState.STOPPED),
        (ProvisionalState.PRACKED, _Input.STOP): ("_nothing", ProvisionalState.PRACKED),
        (ProvisionalState.GAVE_UP, _Input.STOP): ("_nothing", ProvisionalState.GAVE_UP),
        (ProvisionalState.STOPPED, _Input.STOP): ("_nothing", ProvisionalState.STOPPED),
    }

    def __init__(self, response: Response, timers: TimerConfig = TimerConfig(),
                 reliable: bool = False) -> None:
        if not 100 < response.status < 200 or "RSeq" not in response.headers:
            raise TransactionError("ReliableProvisional needs a 101..199 with RSeq")
        # Plain doubling (RFC 3262 3: unlike the 2xx, not capped at T2); over TCP only waits.
        super().__init__(response, timers, reliable, cap=None,
                         initial_state=ProvisionalState.IDLE)
        self.rseq = int(response.headers.get("RSeq"))

    @property
    def has_sdp(self) -> bool:
        return bool(self.response.body) and self.response.content_type == "application/sdp"

    @property
    def waiting(self) -> bool:
        return self.state is ProvisionalState.WAITING

    def start(self) -> list[Action]:
        return self._fire(_Input.START)

    def prack_received(self) -> list[Action]:
        return self._fire(_Input.PRACK)

    def stop(self) -> list[Action]:
        """The INVITE got its final response (or the call ended): no more re-sends."""
        return self._fire(_Input.STOP)

    def _give_up_action(self):
        return NoPrack()


class RSeqVerdict(enum.Enum):
    PRACK = "prack"          # the next reliable 1xx: acknowledge it and pass it up
    DUPLICATE = "duplicate"  # a retransmission (or older): discard
    OUT_OF_ORDER = "out-of-order"  # a gap: discard, the UAS re-sends the missing one


class RSeqTracker:
    """RFC 3262 4: the first reliable 1xx sets the expected RSeq; later ones must be
    the last one plus one.  One tracker per early dialog (per To tag)."""

    def __init__(self) -> None:
        self.last: int | None = None

    def check(self, rseq: int) -> RSeqVerdict:
        if self.last is not None:
            if rseq <= self.last:
                return RSeqVerdict.DUPLICATE
            if rseq != self.last + 1:
                return RSeqVerdict.OUT_OF_ORDER
        self.last = rseq
        return RSeqVerdict.PRACK


# -- option tags and headers -------------------------------------------------------------


def option_tags(headers: Headers, name: str) -> set[str]:
    """The option tags in every ``name`` header (Supported / Require / ...), lower-cased."""
    try:
        return {tag.strip().lower() for tag in headers.get_all(name) if tag.strip()}
    except Exception:
        return set()


def peer_supports(message: Request | Response, tag: str) -> bool:
    """Whether the message lists ``tag`` in Supported or Require (RFC 3261 20.37/20.32;
    ``k`` is Supported's compact form, which the header store expands)."""
    return tag in option_tags(message.headers, "Supported") or \
        tag in option_tags(message.headers, "Require")


def requires(message: Request | Response, tag: str) -> bool:
    return tag in option_tags(message.headers, "Require")


def parse_rseq(value: str | None) -> int | None:
    """An RSeq value (1*DIGIT, at most 2**32-1), or ``None`` when absent or malformed."""
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or not value.isascii() or len(value) > 10:
        return None
    number = int(value)
    return number if 1 <= number <= MAX_UINT32 else None


def parse_rack(value: str | None) -> tuple[int, int, str] | None:
    """``RAck: response-num CSeq-num Method`` (RFC 3262 7.2), or ``None`` if malformed."""
    if value is None:
        return None
    parts = value.split()
    if len(parts) != 3:
        return None
    rseq, cseq = parse_rseq(parts[0]), parse_rseq(parts[1])
    if rseq is None or cseq is None:
        return None
    return rseq, cseq, parts[2]
