"""RTCP for one RtpSession (RFC 3550 section 6), with no I/O: where reports go, when, what
they say, and what the peer's reports told us.

The session owns the sockets and the clock; it asks :meth:`RtcpReporter.due` on its
housekeeping ticks, sends what :meth:`compound` builds, and hands every RTCP datagram to
:meth:`received`.  Reports go to the RTCP port the SDP gave (RTP port + 1 by default) until an
RTCP packet arrives; from then on they go to wherever the peer's RTCP comes from (symmetric
RTCP, like the RTP latch).
"""
from __future__ import annotations

from .packet import (Bye, ReceiverReport, SenderReport, SourceDescription, build_compound,
                     ntp_from_unix, ntp_middle32, parse_rtcp)

__all__ = ["RtcpReporter"]

_MASK32 = 0xFFFFFFFF


class RtcpReporter:
    def __init__(self, ssrc: int, cname: str, interval: float, rng) -> None:
        self.ssrc = ssrc
        self.cname = cname
        self.interval = interval
        self._rng = rng
        self.remote: tuple[str, int] | None = None
        self.latched = False          # the peer's own RTCP source overrides the SDP
        self.next_at: float | None = None
        self.sent_since_report = False  # SR if we sent RTP since the last report, else RR
        self.peer_view: dict = {}     # the peer's report block about our stream
        self.peer_bye = False

    def follow_rtp(self, ip: str, rtp_port: int, rtcp_port: int | None = None) -> None:
        """The RTP destination changed (SDP or an RTP re-latch): RTCP follows unless latched."""
        if not self.latched:
            self.remote = (ip, rtcp_port or rtp_port + 1)

    def schedule(self, now: float) -> None:
        """The next report, randomised 0.5..1.5 x the interval (RFC 3550 6.2)."""
        self.next_at = now + self.interval * self._rng.uniform(0.5, 1.5)

    def due(self, now: float) -> bool:
        return self.next_at is not None and now >= self.next_at

    def compound(self, now: float, rx, rtp_timestamp: int, packets_sent: int, octets_sent: int,
                 bye: bool = False) -> bytes:
        """An SR (or RR when we sent nothing since the last report) + SDES CNAME [+ BYE]."""
        block = rx.report_block(now)
        blocks = (block,) if block is not None else ()
        if self.sent_since_report:
            report = SenderReport(self.ssrc, ntp_from_unix(now), rtp_timestamp,
                                  packets_sent & _MASK32, octets_sent & _MASK32, blocks)
        else:
            report = ReceiverReport(self.ssrc, blocks)
        self.sent_since_report = False
        packets = [report, SourceDescription.cname(self.ssrc, self.cname)]
        if bye:
            packets.append(Bye((self.ssrc,)))
        return build_compound(packets)

    def received(self, data: bytes, addr, now: float, rx) -> None:
        """Take in a compound packet from ``addr``.  Raises RtpError for a malformed one
        (nothing is changed then)."""
        packets = parse_rtcp(data)
        self.remote = (addr[0], addr[1])
        self.latched = True
        for p in packets:
            if isinstance(p, SenderReport):
                rx.on_sender_report(p.ntp_timestamp, now)
            if isinstance(p, (SenderReport, ReceiverReport)):
                for block in p.reports:
                    if block.ssrc == self.ssrc:
                        self.peer_view = _peer_view(block, now)
            elif isinstance(p, Bye):
                self.peer_bye = True


def _peer_view(block, now: float) -> dict:
    view = {"fraction_lost": block.fraction_lost / 256.0, "cumulative_lost": block.cumulative_lost,
            "jitter_ms": block.jitter / 8.0, "highest_seq": block.highest_seq}
    if block.lsr:
        rtt = (ntp_middle32(ntp_from_unix(now)) - block.lsr - block.dlsr) & _MASK32
        if rtt < 0x80000000:
            view["rtt_ms"] = rtt * 1000.0 / 65536
    return view
