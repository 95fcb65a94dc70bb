"""webrtc_answer (ivr/call/webrtc.py) over real loopback sockets on the real media clock:
a Chrome 120 offer is answered and a browser-like peer (aioice's STUN codec, our DTLS
endpoint as the client, libsrtp) checks, nominates, handshakes, then hears our tone over
SRTP while everything on the wire is STUN, DTLS or SRTP."""
from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
from aioice import stun
from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.trial import unittest

from ivr.call.webrtc import DtlsCertificate, webrtc_answer
from ivr.media import g711
from ivr.media.player import PcmSource
from ivr.rtp.clock import MediaClock
from ivr.rtp.dtls import DtlsEndpoint, DtlsRole, DtlsState, parse_fingerprint
from ivr.rtp.packet import RtpPacket
from ivr.rtp.session import RtpSession
from ivr.rtp.srtp import SrtpContext
from ivr.sdp.session import parse_sdp, serialize_sdp
from tests.rtp.test_loopback import wait_until

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
CHROME = (Path(__file__).parents[1] / "sdp" / "data" / "chrome-120-webrtc-offer.sdp").read_bytes()
TONE = (8000 * np.sin(np.arange(8000) * 2 * np.pi * 1000 / 8000)).astype(np.int16)


class BrowserPeer(DatagramProtocol):
    def __init__(self, cert):
        self.cert = cert
        self.wire = []      # everything we received
        self.audio = []
        self.dtls = self.srtp = None
        self.server = None
        self.ufrag = self.pwd = None

    def begin(self, server, ufrag, pwd, server_fingerprint):
        self.server, self.ufrag, self.pwd = server, ufrag, pwd
        self.dtls = DtlsEndpoint(self.cert, DtlsRole.CLIENT, parse_fingerprint(server_fingerprint))
        m = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        m.attributes["USERNAME"] = f"{ufrag}:kXqT"
        m.attributes["ICE-CONTROLLING"] = 1
        m.attributes["USE-CANDIDATE"] = None
        m.add_message_integrity(pwd.encode())
        self.transport.write(bytes(m), server)

    def datagramReceived(self, data, addr):  # noqa: N802
        self.wire.append(data)
        if data[0] < 4:
            if stun.parse_message(data).message_class == stun.Class.RESPONSE:
                for d in self.dtls.start():
                    self.transport.write(d, addr)
        elif 20 <= data[0] < 64:
            for d in self.dtls.receive(data):
                self.transport.write(d, addr)
            if self.dtls.state is DtlsState.CONNECTED and self.srtp is None:
                self.srtp = SrtpContext.from_keys(self.dtls.keys)
        elif self.srtp is not None and not 192 <= data[1] <= 223:
            plain = self.srtp.unprotect(data)
            if plain is not None:
                self.audio.append(g711.ulaw_decode(RtpPacket.parse(plain).payload))


class WebrtcAnswerTests(unittest.TestCase):
    timeout = 20

    def setUp(self):
        self.clock = MediaClock(reactor)
        self.session = RtpSession(reactor, self.clock)
        self.peer = BrowserPeer(DtlsCertificate.generate(NOW))
        self.peer_port = reactor.listenUDP(0, self.peer, interface="127.0.0.1")

    @defer.inlineCallbacks
    def tearDown(self):
        yield self.session.close()
        yield self.peer_port.stopListening()

    @defer.inlineCallbacks
    def test_chrome_offer_answered_and_our_tone_heard_over_dtls_srtp(self):
        ours = DtlsCertificate.generate(NOW)
        offer = CHROME.replace(
            b"4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:3F:1F:E4:9D:34:81:"
            b"8E:32:2F:7D:5C:46", self.peer.cert.sdp_fingerprint.split()[1].encode())
        answer, webrtc = webrtc_answer(parse_sdp(offer), self.session, "127.0.0.1", ours,
                                       session_id=1, version=1)
        sd = parse_sdp(serialize_sdp(answer))
        m = sd.media[0]
        assert m.attribute("setup") == "passive" and sd.attribute("ice-lite") is None
        assert ("ice-lite", None) in sd.attributes
        self.session.play(PcmSource(TONE, loop=0)).addErrback(lambda f: None)  # ends at close
        self.peer.begin(("127.0.0.1", m.port), m.attribute("ice-ufrag"), m.attribute("ice-pwd"),
                        m.attribute("fingerprint"))
        yield wait_until(lambda: len(self.peer.audio) >= 25, timeout=10)
        heard = np.concatenate(self.peer.audio[5:25]).astype(float)
        level = 20 * np.log10(np.sqrt(np.mean(heard ** 2)) / 32768)
        assert level > -20, level
        kinds = {"stun" if d[0] < 4 else "dtls" if 20 <= d[0] < 64 else "rtp" for d in self.peer.wire}
        assert kinds == {"stun", "dtls", "rtp"}
        rtp = [d for d in self.peer.wire if d[0] >= 128]
        assert all(self.peer.srtp.unprotect(d) is None for d in rtp[:3])  # replays: SRTP only
        assert self.session.stats()["media_encryption"] == "dtls-srtp"
