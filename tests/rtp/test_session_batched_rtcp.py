"""SR or RR when the packets go out in the media clock's batch (real 127.0.0.1 sockets, the
clock on task.Clock, both I/O backends: conftest.py's ``media_io``).

A session in a clock firing adds its RTP to the firing's batch without touching its RTCP
reporter; whether it sent since the last report is worked out when the report is built
(RFC 3550 6.4: an SR when we sent RTP since the last report, else an RR)."""
from __future__ import annotations

import random
import socket

from twisted.internet import task

from ivr.rtp.clock import MediaClock
from ivr.rtp.packet import ReceiverReport, SenderReport, parse_rtcp
from ivr.rtp.ports import PortAllocator
from ivr.rtp.receiver import MediaReceiver
from ivr.rtp.session import RtpSession


def _sock():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def _reports(sock):
    out = []
    while True:
        try:
            data, _ = sock.recvfrom(4096)
        except BlockingIOError:
            return out
        if 192 <= data[1] <= 223:
            out.append(parse_rtcp(data)[0])


def test_sr_while_the_batch_sends_rr_once_nothing_was_sent(media_io):
    clock = task.Clock()
    rx = MediaReceiver(io=media_io)
    mc = MediaClock(clock, phases=4, receiver=rx, io=media_io)
    low = 30000 + 2 * random.randrange(5000)
    s = RtpSession(clock, mc, ports=PortAllocator(low, low + 40, receiver=rx),
                   rng=random.Random(3), media_timeout=0, rtcp_interval=1.0)
    rtp, rtcp = _sock(), _sock()
    try:
        s.set_remote("127.0.0.1", rtp.getsockname()[1], 0, "PCMU",
                     rtcp_port=rtcp.getsockname()[1])
        for _ in range(4 * 150):  # 3 s of firings: reports every 0.5..1.5 s
            clock.advance(0.005 + 1e-9)
        sent = _reports(rtcp)
        assert sent and all(isinstance(r, SenderReport) for r in sent)
        assert sent[-1].packet_count > 0 and mc.batch.packets >= sent[-1].packet_count
        s.hold()
        for _ in range(4 * 250):  # 5 s on hold: one SR for the packets before, then RRs
            clock.advance(0.005 + 1e-9)
        later = _reports(rtcp)
        assert len(later) >= 3
        assert all(isinstance(r, ReceiverReport) for r in later[1:])
        s.unhold()
        for _ in range(4 * 150):
            clock.advance(0.005 + 1e-9)
        assert isinstance(_reports(rtcp)[-1], SenderReport)  # sending again
    finally:
        s.close()
        rx.close()
        rtp.close()
        rtcp.close()
