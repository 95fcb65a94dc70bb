"""Relay on arrival over real 127.0.0.1 sockets and the real reactor, wired as the server wires
a bridge: ports from a PortAllocator whose MediaReceiver the media clock polls.  A packet from
the caller's peer is read in the reactor turn it wakes (not at the clock's next poll) and is
on its way to the other peer before that read returns.  The media clock here fires once a
minute, so nothing in this test can be sent by a tick: what arrives was forwarded.

Not a timed test: it asserts *where* the send happens (inside the receive handler), which is
what makes the added latency a fraction of a millisecond instead of up to a period."""
from __future__ import annotations

import socket

from twisted.internet import defer, reactor
from twisted.trial import unittest

from ivr.call.bridge import Bridge
from ivr.rtp.clock import MediaClock
from ivr.rtp.packet import RtpPacket
from ivr.rtp.ports import PortAllocator
from ivr.rtp.receiver import MediaReceiver
from ivr.rtp.session import RtpSession

from tests.call.harness import free_port_range
from tests.rtp.test_fastpath import FakeLeg
from tests.rtp.test_loopback import wait_until


def _peer():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


class ForwardOnArrivalTests(unittest.TestCase):
    timeout = 10

    def setUp(self):
        self.receiver = MediaReceiver()
        self.media = MediaClock(reactor, interval=60.0, receiver=self.receiver)
        ports = PortAllocator(*free_port_range(2), receiver=self.receiver)
        self.a = RtpSession(reactor, self.media, ports=ports, media_timeout=0)
        self.b = RtpSession(reactor, self.media, ports=ports, media_timeout=0)
        self.peer_a, self.peer_b = _peer(), _peer()
        self.a.set_remote(*self.peer_a.getsockname(), payload_type=0, codec="PCMU")
        self.b.set_remote(*self.peer_b.getsockname(), payload_type=0, codec="PCMU")

    @defer.inlineCallbacks
    def tearDown(self):
        yield self.a.close()
        yield self.b.close()
        self.receiver.close()
        self.peer_a.close()
        self.peer_b.close()

    @defer.inlineCallbacks
    def test_a_relayed_packet_is_sent_from_the_receive_handler_of_its_arrival(self):
        Bridge(FakeLeg("A", self.a), FakeLeg("B", self.b)).start()
        self.assertEqual(self.receiver.watched, 2)  # both legs' sockets: read on arrival
        inside = []
        receive = type(self.a)._rtp_received

        def handler(data, addr):
            before = self.b.forwarded
            receive(self.a, data, addr)
            inside.append(self.b.forwarded - before)  # sent before the handler returned

        self.a._rtp_received = handler
        ticks = self.media.ticks
        payload = bytes(range(1, 161))
        pkt = RtpPacket(0, 77, 12345, 0xCAFE, payload).serialize()
        self.peer_a.sendto(pkt, ("127.0.0.1", self.a.local_port))
        got = []

        def arrived():
            try:
                got.append(self.peer_b.recv(2048))
            except BlockingIOError:
                pass
            return bool(got)

        yield wait_until(arrived, timeout=5)
        self.assertEqual(inside, [1])
        self.assertEqual(self.media.ticks, ticks)  # no clock firing was involved
        out = RtpPacket.parse(got[0])
        self.assertEqual((out.payload, out.ssrc), (payload, self.b.ssrc))

    def test_without_forwarding_the_socket_stays_on_the_clock_polls(self):
        self.assertEqual(self.receiver.watched, 0)
        self.a.forward_to(self.b, object())
        self.assertEqual(self.receiver.watched, 1)
        self.a.stop_forwarding()
        self.assertEqual(self.receiver.watched, 0)
