"""Two real RtpSessions on 127.0.0.1 over the real reactor: audio, RFC 4733 digits, latching."""
import numpy as np
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import DatagramProtocol
from twisted.trial import unittest

from ivr.media import g711
from ivr.media.player import PcmSource
from ivr.rtp.clock import MediaClock
from ivr.rtp.session import RtpSession


def wait_until(predicate, timeout=5.0):
    d = defer.Deferred()

    def check(elapsed=[0.0]):
        if predicate():
            d.callback(None)
        elif elapsed[0] > timeout:
            d.errback(AssertionError("timed out waiting"))
        else:
            elapsed[0] += 0.02
            reactor.callLater(0.02, check)

    check()
    return d


class LoopbackTests(unittest.TestCase):
    timeout = 20

    def setUp(self):
        self.clock = MediaClock(reactor)
        self.a = RtpSession(reactor, self.clock)
        self.b = RtpSession(reactor, self.clock)

    @defer.inlineCallbacks
    def tearDown(self):
        yield self.a.close()
        yield self.b.close()
        self.assertFalse(self.clock.running)

    @defer.inlineCallbacks
    def test_audio_and_dtmf_both_ways(self):
        a, b = self.a, self.b
        a.set_remote("127.0.0.1", b.local_port, 0, "PCMU", telephone_event_pt=101)
        b.set_remote("127.0.0.1", a.local_port, 0, "PCMU", telephone_event_pt=101)
        heard, digits_b, digits_a = [], [], []
        b.add_audio_listener(heard.append)
        b.on_dtmf(lambda d, source: digits_b.append((d, source)))
        a.on_dtmf(lambda d, source: digits_a.append(d))
        tone = (6000 * np.sin(np.arange(1600) * 2 * np.pi * 1000 / 8000)).astype(np.int16)
        frames = yield a.play(PcmSource(tone))
        self.assertEqual(frames, 10)
        yield a.send_dtmf("5#", duration_ms=60)
        yield b.send_dtmf("9")
        yield wait_until(lambda: len(digits_b) == 2 and len(digits_a) == 1)
        self.assertEqual(digits_b, [("5", "rfc4733"), ("#", "rfc4733")])
        self.assertEqual(digits_a, ["9"])
        # the tone arrives bit-exact (G.711 is deterministic, loopback does not lose packets)
        want = g711.ulaw_decode(g711.ulaw_encode(tone)).tobytes()
        self.assertIn(want, np.concatenate(heard).tobytes())
        sa, sb = a.stats(), b.stats()
        self.assertEqual(sb["remote_ssrc"], sa["ssrc"])
        self.assertEqual(sb["lost"], 0)
        self.assertGreater(sb["packets_received"], 20)
        self.assertEqual(sa["dtmf_sent"], 2)

    @defer.inlineCallbacks
    def test_symmetric_rtp_latches_to_real_source(self):
        a, b = self.a, self.b
        # b's SDP says the peer is on a port nobody listens on
        sink = reactor.listenUDP(0, DatagramProtocol(), interface="127.0.0.1")
        self.addCleanup(sink.stopListening)
        wrong = sink.getHost().port
        b.set_remote("127.0.0.1", wrong, 0, "PCMU")
        heard_a = []
        a.add_audio_listener(heard_a.append)
        yield task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(heard_a, [])  # nothing reaches a yet
        a.set_remote("127.0.0.1", b.local_port, 0, "PCMU")
        yield wait_until(lambda: len(heard_a) >= 5)
        self.assertEqual(b.remote_address, ("127.0.0.1", a.local_port))
        self.assertEqual(b.stats()["relatches"], 1)
