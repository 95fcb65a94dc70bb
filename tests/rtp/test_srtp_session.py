"""RtpSession with SRTP: tone frames encrypted end to end between two real sessions (a
listener without the key hears nothing, one without SRTP hears noise), RFC 4733 digits over
SRTP, SRTCP, replays and forgeries dropped and counted, and a plain session left untouched."""
import random

import numpy as np
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import DatagramProtocol
from twisted.trial import unittest

from ivr.media import g711
from ivr.media.player import PcmSource
from ivr.rtp.clock import MediaClock
from ivr.rtp.session import RtpSession
from ivr.rtp.srtp import SrtpContext
from ivr.sdp import make_answer, make_offer, negotiate_answer, parse_sdp, serialize_sdp
from tests.rtp.fakes import FakePorts
from tests.rtp.test_loopback import wait_until

TONE = (8000 * np.sin(np.arange(8000) * 2 * np.pi * 1000 / 8000)).astype(np.int16)
HEARD_TONE = g711.ulaw_decode(g711.ulaw_encode(TONE))


def negotiated_contexts():
    """Keys from our own offer answered by our own answerer, as two legs would get them."""
    offer = make_offer("127.0.0.1", 1000, session_id=1, version=1, media_encryption="required",
                       secure_signalling=True)
    answer, uas = make_answer(parse_sdp(serialize_sdp(offer)), "127.0.0.1", 2000, session_id=2,
                              version=1, media_encryption="optional", secure_signalling=True)
    uac = negotiate_answer(offer, parse_sdp(serialize_sdp(answer)))
    return SrtpContext.from_keys(uac.srtp), SrtpContext.from_keys(uas.srtp)


class Tap(DatagramProtocol):
    """On the path from A to B: records what crosses the wire and copies A's packets to B
    and to the eavesdroppers; what comes back goes to A."""

    def __init__(self):
        self.wire = []
        self.a = self.b = None
        self.listeners = []

    def datagramReceived(self, data, addr):  # noqa: N802
        if addr[1] == self.a[1]:
            self.wire.append(data)
            for dest in [self.b] + self.listeners:
                self.transport.write(data, dest)
        else:
            self.transport.write(data, self.a)


class EncryptedLoopbackTests(unittest.TestCase):
    timeout = 20

    def setUp(self):
        self.clock = MediaClock(reactor)
        self.a = RtpSession(reactor, self.clock)
        self.b = RtpSession(reactor, self.clock)
        self.eve = RtpSession(reactor, self.clock)      # SRTP, but not the key
        self.plain = RtpSession(reactor, self.clock)    # no SRTP at all
        self.tap = Tap()
        self.tap_port = reactor.listenUDP(0, self.tap, interface="127.0.0.1")

    @defer.inlineCallbacks
    def tearDown(self):
        for s in (self.a, self.b, self.eve, self.plain):
            yield s.close()
        yield self.tap_port.stopListening()

    @defer.inlineCallbacks
    def test_tone_is_encrypted_end_to_end(self):
        a, b, eve, plain, tap = self.a, self.b, self.eve, self.plain, self.tap
        ctx_a, ctx_b = negotiated_contexts()
        a.set_srtp(ctx_a)
        b.set_srtp(ctx_b)
        eve.set_srtp(negotiated_contexts()[1])  # the same suite, other keys
        tap.a, tap.b = ("127.0.0.1", a.local_port), ("127.0.0.1", b.local_port)
        tap.listeners = [("127.0.0.1", eve.local_port), ("127.0.0.1", plain.local_port)]
        a.set_remote("127.0.0.1", self.tap_port.getHost().port, 0, "PCMU", telephone_event_pt=101)
        # B sends through the tap too: A would latch onto B's own address otherwise
        b.set_remote("127.0.0.1", self.tap_port.getHost().port, 0, "PCMU", telephone_event_pt=101)
        for listener in (eve, plain):
            listener.set_remote("127.0.0.1", 9, 0, "PCMU")
            listener.set_direction("recvonly")
        heard = {name: [] for name in ("b", "eve", "plain")}
        for name, session in (("b", b), ("eve", eve), ("plain", plain)):
            session.add_audio_listener(heard[name].append)
        digits = []
        a.on_dtmf(lambda d, source: digits.append(d))
        played = yield a.play(PcmSource(TONE))
        self.assertEqual(played, 50)
        yield b.send_dtmf("7", duration_ms=60)
        yield wait_until(lambda: digits and len(heard["b"]) >= 50 and len(heard["plain"]) >= 50)
        self.assertEqual(digits, ["7"])  # RFC 4733 over SRTP, B to A
        # B hears the tone bit-exact, somewhere in the frames it got (silence before/after)
        got = np.concatenate(heard["b"])
        start = int(np.argmax(np.abs(got) > 1000)) // 160 * 160  # frames are whole 20 ms
        np.testing.assert_array_equal(got[start:start + len(TONE)], HEARD_TONE)
        # no packet on the wire carries the tone's PCMU payload
        tone_bytes = g711.ulaw_encode(TONE).tobytes()
        frames = {tone_bytes[i:i + 160] for i in range(0, len(tone_bytes), 160)}
        self.assertGreaterEqual(len(tap.wire), 50)
        self.assertFalse([p for p in tap.wire if p[12:172] in frames])
        # without the key: nothing decodes, every packet is counted as an authentication failure
        self.assertEqual(heard["eve"], [])
        self.assertGreaterEqual(eve.stats()["srtp_auth_failures"], 50)
        self.assertEqual(eve.stats()["packets_received"], 0)
        # without SRTP: the payloads decode to noise, not to the tone
        noise = np.concatenate(heard["plain"]).astype(float)
        ref = np.tile(HEARD_TONE[:160].astype(float), len(noise) // 160)
        corr = abs(np.dot(noise[:len(ref)], ref)) / (np.linalg.norm(noise[:len(ref)]) * np.linalg.norm(ref))
        self.assertLess(corr, 0.2)
        stats = b.stats()
        self.assertEqual((stats["media_encryption"], stats["srtp_suite"]), ("srtp", "AES_CM_128_HMAC_SHA1_80"))
        self.assertEqual(stats["srtp_auth_failures"] + stats["srtp_replays"], 0)
        self.assertEqual(plain.stats()["media_encryption"], "off")


def fake_session(clock, media, number, rng_seed):
    return RtpSession(clock, media, ports=FakePorts(number), media_timeout=0, rtcp_interval=0.5,
                      rng=random.Random(rng_seed))


def deliver(session, sent, rtcp=False):
    port = session._pair.rtcp if rtcp else session._pair.rtp
    for data, _addr in sent:
        port.protocol.datagramReceived(data, ("127.0.0.1", 40000))


class FakeClockTests(unittest.TestCase):
    def setUp(self):
        self.reactor = task.Clock()
        self.media = MediaClock(self.reactor)
        self.a = fake_session(self.reactor, self.media, 40000, 1)
        self.b = fake_session(self.reactor, self.media, 42000, 2)

    def tearDown(self):
        self.a.close()
        self.b.close()

    def run_for(self, seconds):
        for _ in range(int(seconds / 0.02)):
            self.reactor.advance(0.02)

    def test_srtcp_replays_and_forgeries(self):
        a, b = self.a, self.b
        ctx_a, ctx_b = negotiated_contexts()
        a.set_srtp(ctx_a)
        b.set_srtp(ctx_b)
        a.set_remote("127.0.0.1", 42000, 0, "PCMU")
        b.set_remote("127.0.0.1", 40000, 0, "PCMU")
        self.run_for(2)
        rtp_sent, rtcp_sent = list(a._pair.rtp.sent), list(a._pair.rtcp.sent)
        self.assertGreater(len(rtcp_sent), 0)
        # what leaves the sockets is protected: SRTP adds its 10-byte tag, SRTCP 14 bytes
        self.assertTrue(all(len(d) == 12 + 160 + 10 for d, _ in rtp_sent))
        deliver(b, rtp_sent)
        deliver(b, rtcp_sent, rtcp=True)
        stats = b.stats()
        self.assertEqual(stats["packets_received"], len(rtp_sent))
        self.assertEqual(stats["rtcp_received"], len(rtcp_sent))
        self.assertEqual(stats["srtp_replays"], 0)
        deliver(b, rtp_sent[-3:])            # replayed
        deliver(b, rtcp_sent[-1:], rtcp=True)
        forged = bytearray(rtp_sent[-1][0])
        forged[3] ^= 0x40                    # another sequence number, same tag
        deliver(b, [(bytes(forged), None), (b"\x80\x00" + bytes(170), None)])
        stats = b.stats()
        self.assertEqual(stats["srtp_replays"], 4)
        self.assertEqual(stats["srtp_auth_failures"], 2)
        self.assertEqual(stats["packets_received"], len(rtp_sent))  # none of them got through

    def test_srtcp_muxed_on_the_rtp_port(self):
        a, b = self.a, self.b
        ctx_a, ctx_b = negotiated_contexts()
        a.set_srtp(ctx_a)
        b.set_srtp(ctx_b)
        a.set_remote("127.0.0.1", 42000, 0, "PCMU", rtcp_mux=True)
        b.set_remote("127.0.0.1", 40000, 0, "PCMU", rtcp_mux=True)
        self.run_for(2)
        self.assertEqual(a._pair.rtcp.sent, [])
        deliver(b, a._pair.rtp.sent)
        self.assertGreater(b.stats()["rtcp_received"], 0)
        self.assertEqual(b.stats()["srtp_auth_failures"], 0)

    def test_plain_session_keeps_the_plain_path(self):
        a = self.a
        self.assertNotIn("_send_rtp", vars(a))
        a.set_srtp(negotiated_contexts()[0])
        self.assertIn("_send_rtp", vars(a))
        a.set_srtp(None)
        for name in ("_send_rtp", "_rtp_received", "_rtcp_received"):
            self.assertNotIn(name, vars(a))
        a.set_remote("127.0.0.1", 42000, 0, "PCMU")
        self.run_for(0.2)
        self.assertTrue(all(len(d) == 172 for d, _ in a._pair.rtp.sent))
        self.assertEqual(a.stats()["media_encryption"], "off")
