"""RTCP for one RtpSession (RFC 3550 section 6), with no I/O: where reports go, when, what
they say, and what the peer's reports told us.

The session owns the sockets and the clock; it asks :meth:`RtcpReporter.due` on its
housekeeping ticks, sends what :meth:`compound` builds, and hands every RTCP datagram to
:meth:`received`.

Where: the peer's ``a=rtcp`` port and address when its SDP has one (RFC 3605), else the RTP
port + 1 on the RTP address; with rtcp-mux (RFC 5761) the RTP address itself, sent from our
RTP port.  Once an RTCP packet arrives, reports go to wherever the peer's RTCP comes from
(symmetric RTCP, like the RTP latch): a phone behind NAT is reached at its mapped port even
when its SDP only knows its private one.

When (6.2, 6.3): the first report after half the interval, then one every interval (5 s,
the RFC's minimum, is the default), each randomised to 0.5..1.5 times that so that the
reports of many calls started together do not bunch up.  A two-party call needs neither
the bandwidth share (we are far below 5% of 64 kbit/s) nor timer reconsideration, so
neither is computed; the reduced minimum (360/kbps) is not used.

What: an SR when we sent RTP since the previous report, else an RR (6.4), each with a
report block about the peer's stream once it sent any, then SDES CNAME; BYE on close.
"""
from __future__ import annotations

from .packet import (Bye, ReceiverReport, SenderReport, SourceDescription, build_compound,
                     ntp_from_unix, ntp_middle32, parse_rtcp)

__all__ = ["RtcpReporter"]

_MASK32 = 0xFFFFFFFF


class RtcpReporter:
    def __init__(self, ssrc: int, cname: str, interval: float, rng,
                 first_seq: int | None = None) -> None:
        self.ssrc = ssrc
        self.cname = cname
        self.interval = interval
        self._rng = rng
        self.first_seq = first_seq    # our first RTP sequence number (the peer's base)
        self.remote: tuple[str, int] | None = None
        self.mux = False              # RTCP on the RTP port (RFC 5761)
        self.latched = False          # the peer's own RTCP source overrides the SDP
        self.next_at: float | None = None
        self.sent_since_report = False  # SR if we sent RTP since the last report, else RR
        self.peer_view: dict = {}     # the peer's report block about our stream
        self.peer_bye = False

    def follow_rtp(self, ip: str, rtp_port: int, rtcp_port: int | None = None,
                   rtcp_ip: str | None = None, mux: bool | None = None) -> None:
        """The SDP gave the peer's RTP address (and maybe its a=rtcp port/address or
        rtcp-mux), or the RTP latch moved it: RTCP follows unless the peer's RTCP latched.
        ``mux=None`` keeps the current choice (an RTP re-latch)."""
        if mux is not None:
            self.mux = mux
        if self.mux:
            self.remote = (ip, rtp_port)  # the RTP latch is the RTCP latch
        elif not self.latched:
            self.remote = (rtcp_ip or ip, rtcp_port or rtp_port + 1)

    def schedule(self, now: float) -> None:
        """The next report: half an interval after the first call, then an interval,
        randomised 0.5..1.5 x (RFC 3550 6.2, 6.3.1)."""
        base = self.interval / 2 if self.next_at is None else self.interval
        self.next_at = now + base * self._rng.uniform(0.5, 1.5)

    def due(self, now: float) -> bool:
        return self.next_at is not None and now >= self.next_at

    def compound(self, now: float, rx, rtp_timestamp: int, packets_sent: int, octets_sent: int,
                 bye: bool = False) -> bytes:
        """An SR (or RR when we sent nothing since the last report) + SDES CNAME [+ BYE]."""
        block = rx.report_block(now)
        blocks = (block,) if block is not None else ()
        if self.sent_since_report:
            report = SenderReport(self.ssrc, ntp_from_unix(now), rtp_timestamp & _MASK32,
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
        if not self.mux:  # with rtcp-mux the RTP latch decides
            self.remote = (addr[0], addr[1])
            self.latched = True
        for p in packets:
            if isinstance(p, SenderReport):
                rx.on_sender_report(p.ntp_timestamp, now)
            if isinstance(p, (SenderReport, ReceiverReport)):
                for block in p.reports:
                    if block.ssrc == self.ssrc:
                        self.peer_view = _peer_view(block, now, self.first_seq)
            elif isinstance(p, Bye):
                self.peer_bye = True


def _peer_view(block, now: float, first_seq: int | None) -> dict:
    """What the peer's report block says about our stream.  ``jitter_ms`` assumes our 8 kHz
    clock; ``loss_pct`` is the cumulative loss over the packets the peer expected (its
    extended highest sequence number less our first, + 1)."""
    view = {"fraction_lost": block.fraction_lost / 256.0, "cumulative_lost": block.cumulative_lost,
            "jitter_ms": block.jitter / 8.0, "highest_seq": block.highest_seq}
    if first_seq is not None:
        expected = block.highest_seq - first_seq + 1
        if expected > 0:
            lost = max(0, min(block.cumulative_lost, expected))
            view["loss_pct"] = round(100.0 * lost / expected, 2)
    if block.lsr:
        rtt = (ntp_middle32(ntp_from_unix(now)) - block.lsr - block.dlsr) & _MASK32
        if rtt < 0x80000000:
            view["rtt_ms"] = rtt * 1000.0 / 65536
    return view
