"""RFC 3261 timer values and names (section 17 and table 4), in one place.

Pure: constants and a frozen config.  Only the transaction layer turns a
``StartTimer(TimerName.A, 0.5)`` action into a ``callLater``.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

#: RTT estimate (RFC 3261 17.1.1.1).
T1 = 0.5
#: Maximum retransmit interval for non-INVITE requests and INVITE responses.
T2 = 4.0
#: Maximum time a message can remain in the network.
T4 = 5.0


@dataclass(frozen=True)
class TimerConfig:
    """The base timers.  Tests and interop runs may shorten ``t1``; everything else
    (B, D, F, H, J, L and the 2xx retransmit window) is derived from these three."""

    t1: float = T1
    t2: float = T2
    t4: float = T4

    @property
    def timeout(self) -> float:
        """64*T1: Timers B, F, H, J (unreliable), L and the 2xx ACK wait."""
        return 64 * self.t1

    #: Timer D's lower bound on unreliable transports (RFC 3261 17.1.1.2: "at least 32 s").
    timer_d: float = 32.0


class TimerName(enum.Enum):
    """Timers named after their RFC letter (RFC 3261 table 4; L from RFC 6026)."""

    A = "A"  # INVITE request retransmit (client, unreliable), doubles uncapped
    B = "B"  # INVITE transaction timeout (client), 64*T1
    C = "C"  # proxy INVITE timeout (unused by a UA; named for completeness)
    D = "D"  # wait time for response retransmits (INVITE client), 32 s / 0
    E = "E"  # non-INVITE request retransmit, doubles capped at T2
    F = "F"  # non-INVITE transaction timeout, 64*T1
    G = "G"  # INVITE final response retransmit (server), doubles capped at T2
    H = "H"  # wait time for ACK receipt (INVITE server), 64*T1
    I = "I"  # noqa: E741 - wait time for ACK retransmits (INVITE server), T4 / 0
    J = "J"  # wait time for non-INVITE request retransmits (server), 64*T1 / 0
    K = "K"  # wait time for response retransmits (non-INVITE client), T4 / 0
    L = "L"  # RFC 6026: INVITE server "Accepted" state lifetime, 64*T1
    #: RFC 3261 13.3.1.4 (the UAS core's 2xx retransmission; unnamed in the RFC):
    #: retransmit interval starting at T1, doubling, capped at T2 ...
    RETRANSMIT_2XX = "2xx-retransmit"
    #: ... and the 64*T1 wait for the ACK after which the UAS core sends BYE.
    ACK_WAIT_2XX = "2xx-ack-wait"
