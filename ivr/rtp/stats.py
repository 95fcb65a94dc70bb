"""RTP receive statistics (RFC 3550 appendix A.1, A.3 and A.8).

Pure: the caller passes each packet's arrival time (seconds, any monotonic epoch).

Differences from the appendix code, chosen for a telephony endpoint:

* no probation: the source was already chosen by SDP / symmetric-RTP latching, so the first
  packet starts the statistics (A.1's ``MIN_SEQUENTIAL`` would drop it from the counts);
* duplicates and reorderings are told apart with a 128-packet window behind the highest
  sequence number.  ``received`` counts every packet, duplicates included, exactly as A.3
  does, so ``cumulative_lost`` can go negative; ``lost`` (for humans) does not count
  duplicates as received, so it is the number of sequence numbers never seen;
* a new SSRC restarts the statistics (the peer restarted its stream).
"""
from __future__ import annotations

from dataclasses import dataclass

from .packet import ReportBlock, ntp_middle32

__all__ = ["ReceiveStats", "PacketVerdict"]

SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
WINDOW = 128


@dataclass(frozen=True)
class PacketVerdict:
    """What ``ReceiveStats.update`` concluded about one packet."""
    accepted: bool  # False while a large sequence jump is being confirmed
    duplicate: bool = False
    reordered: bool = False
    restarted: bool = False  # statistics (re)started with this packet


# The verdicts are immutable: one shared instance per combination, not one per packet.
_VERDICTS = {(a, d, r, s): PacketVerdict(a, d, r, s)
             for a in (True, False) for d in (True, False) for r in (True, False)
             for s in (True, False)}
_REJECTED = _VERDICTS[(False, False, False, False)]
_ACCEPTED = _VERDICTS[(True, False, False, False)]
_WINDOW_MASK = (1 << WINDOW) - 1


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


class ReceiveStats:
    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self.ssrc: int | None = None
        self.duplicates = 0
        self.reordered = 0
        self.octets = 0
        self._started = False
        self._last_sr_ntp_mid = 0
        self._last_sr_arrival: float | None = None

    # ---------------------------------------------------------------- A.1 sequence
    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self._window = 1  # bit i set = (extended max - i) was received
        self._jitter = 0.0
        self._last_arrival: float | None = None  # of the last packet in _jitter (A.8's transit)
        self._last_ts = 0
        self._started = True

    def update(self, ssrc: int, seq: int, timestamp: int, arrival: float,
               payload_octets: int = 0) -> PacketVerdict:
        """Account one received packet; returns what was concluded about it."""
        if ssrc == self.ssrc and self._started:
            # The common case first, inline: the next packets of the stream in order (a
            # gap is a loss).  Same arithmetic as below and in _update_jitter.
            max_seq = self.max_seq
            udelta = (seq - max_seq) & 0xFFFF
            if 0 < udelta < MAX_DROPOUT:
                if seq < max_seq:
                    self.cycles += SEQ_MOD
                self.max_seq = seq
                self._window = ((self._window << udelta) | 1) & _WINDOW_MASK
                self.received += 1
                self.octets += payload_octets
                last_arrival = self._last_arrival
                if last_arrival is not None:
                    d = ((arrival - last_arrival) * self.clock_rate
                         - (((timestamp - self._last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000))
                    self._jitter += (abs(d) - self._jitter) / 16.0
                self._last_arrival, self._last_ts = arrival, timestamp
                return _ACCEPTED
        restarted = False
        if not self._started or ssrc != self.ssrc:
            self.ssrc = ssrc
            self.duplicates = self.reordered = self.octets = 0
            self._init_seq(seq)
            restarted = True
            dup = reord = False
        else:
            udelta = (seq - self.max_seq) % SEQ_MOD
            dup = reord = False
            if 0 < udelta < MAX_DROPOUT:
                if seq < self.max_seq:
                    self.cycles += SEQ_MOD
                self.max_seq = seq
                self._window = ((self._window << udelta) | 1) & _WINDOW_MASK
            elif udelta == 0:
                dup = True
            elif udelta <= SEQ_MOD - MAX_MISORDER:
                # a very large jump: accept only when the next packet confirms it
                if seq == self.bad_seq:
                    self._init_seq(seq)
                    restarted = True
                else:
                    self.bad_seq = (seq + 1) % SEQ_MOD
                    return _REJECTED
            else:
                behind = SEQ_MOD - udelta
                if behind < WINDOW and self._window >> behind & 1:
                    dup = True
                else:
                    reord = True
                    if behind < WINDOW:
                        self._window |= 1 << behind
        self.received += 1
        self.octets += payload_octets
        if dup:
            self.duplicates += 1
        else:
            if reord:
                self.reordered += 1
            self._update_jitter(timestamp, arrival)
        return _VERDICTS[(True, dup, reord, restarted)]

    # ---------------------------------------------------------------- A.8 jitter
    def _update_jitter(self, timestamp: int, arrival: float) -> None:
        if self._last_arrival is not None:
            d = (arrival - self._last_arrival) * self.clock_rate - _signed32(timestamp - self._last_ts)
            self._jitter += (abs(d) - self._jitter) / 16.0
        self._last_arrival, self._last_ts = arrival, timestamp

    # ---------------------------------------------------------------- A.3 loss
    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq if self._started else 0

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1 if self._started else 0

    @property
    def cumulative_lost(self) -> int:
        """expected - received, clamped to the signed 24-bit RR field."""
        if not self._started:
            return 0
        return max(-(1 << 23), min((1 << 23) - 1, self.expected - self.received))

    @property
    def lost(self) -> int:
        """Packets never received (duplicates do not offset losses here, unlike the RR field)."""
        if not self._started:
            return 0
        return max(0, self.expected - (self.received - self.duplicates))

    @property
    def jitter(self) -> int:
        """Interarrival jitter in timestamp units (the RR field)."""
        return int(self._jitter) if self._started else 0

    @property
    def jitter_ms(self) -> float:
        return (self._jitter * 1000.0 / self.clock_rate) if self._started else 0.0

    def interval_fraction_lost(self) -> int:
        """Fraction lost since the previous call, as the 8-bit RR field (advances the interval)."""
        if not self._started:
            return 0
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            return 0
        return min(255, (lost_interval << 8) // expected_interval)

    # ---------------------------------------------------------------- SR bookkeeping
    def on_sender_report(self, ntp_timestamp: int, arrival: float) -> None:
        """Remember the peer's last SR (for LSR/DLSR in our next report block)."""
        self._last_sr_ntp_mid = ntp_middle32(ntp_timestamp)
        self._last_sr_arrival = arrival

    def report_block(self, now: float) -> ReportBlock | None:
        """An RR report block for this source (None before any packet arrived)."""
        if not self._started or self.ssrc is None:
            return None
        dlsr = 0
        if self._last_sr_arrival is not None:
            dlsr = max(0, min(0xFFFFFFFF, int((now - self._last_sr_arrival) * 65536)))
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=self.interval_fraction_lost(),
            cumulative_lost=self.cumulative_lost,
            highest_seq=self.extended_max & 0xFFFFFFFF,
            jitter=min(self.jitter, 0xFFFFFFFF),
            lsr=self._last_sr_ntp_mid,
            dlsr=dlsr,
        )

    def as_dict(self) -> dict:
        return {
            "ssrc": self.ssrc,
            "packets_received": self.received if self._started else 0,
            "octets_received": self.octets,
            "expected": self.expected,
            "lost": self.lost,
            "cumulative_lost": self.cumulative_lost,
            "duplicates": self.duplicates,
            "reordered": self.reordered,
            "jitter": self.jitter,
            "jitter_ms": round(self.jitter_ms, 3),
            "highest_seq": self.extended_max,
        }
