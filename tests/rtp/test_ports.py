"""PortAllocator against real sockets on 127.0.0.1 (trial TestCase: stopListening completes on the reactor)."""
import random
import socket

from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.trial import unittest

from ivr.rtp.ports import EphemeralPorts, PortAllocator, PortsExhausted


def free_even_range(n_pairs):
    """A range of 2*n_pairs ports that are free right now (probed with real sockets)."""
    rng = random.Random()
    for _ in range(200):
        low = rng.randrange(30000, 60000, 2)
        socks = []
        try:
            for p in range(low, low + 2 * n_pairs):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return low, low + 2 * n_pairs - 1
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free range")


class PortAllocatorTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_even_pairs_skip_busy_and_release(self):
        low, high = free_even_range(3)
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        blocker.bind(("127.0.0.1", low + 1))  # RTCP port of the first pair is busy
        self.addCleanup(blocker.close)
        alloc = PortAllocator(low, high, reactor)
        a = alloc.allocate(DatagramProtocol, DatagramProtocol)
        b = alloc.allocate(DatagramProtocol, DatagramProtocol)
        self.assertEqual((a.number, b.number), (low + 2, low + 4))
        self.assertEqual((a.rtp.getHost().port, a.rtcp.getHost().port), (low + 2, low + 3))
        self.assertRaises(PortsExhausted, alloc.allocate, DatagramProtocol, DatagramProtocol)
        self.assertEqual(alloc.in_use, 2)
        yield alloc.release(a)
        self.assertEqual(alloc.in_use, 1)
        c = alloc.allocate(DatagramProtocol, DatagramProtocol)
        self.assertEqual(c.number, low + 2)
        yield alloc.release(b)
        yield alloc.release(c)

    def test_range_rounding(self):
        alloc = PortAllocator(30001, 30010)
        self.assertEqual((alloc.low, alloc.capacity), (30002, 4))
        self.assertRaises(ValueError, PortAllocator, 30000, 29000)

    @defer.inlineCallbacks
    def test_ephemeral_pair(self):
        ports = EphemeralPorts(reactor)
        pair = ports.allocate(DatagramProtocol, DatagramProtocol)
        self.assertEqual(pair.number % 2, 0)
        self.assertEqual(pair.rtcp.getHost().port, pair.number + 1)
        yield ports.release(pair)
