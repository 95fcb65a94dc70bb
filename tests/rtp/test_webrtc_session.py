"""RtpSession as a WebRTC stream (set_webrtc), in memory on task.Clock: a browser-like peer
built from the same libraries (aioice's STUN codec, our DTLS endpoint as the client, libsrtp)
checks, nominates, handshakes and exchanges SRTP; nothing plain ever leaves the port."""
from __future__ import annotations

import datetime

import numpy as np
from aioice import stun
from twisted.internet import task

from ivr.rtp.dtls import DtlsCertificate, DtlsEndpoint, DtlsRole, DtlsState, parse_fingerprint
from ivr.rtp.ice import IceCredentials, IceLiteAgent
from ivr.rtp.packet import RtpPacket
from ivr.rtp.session import RtpSession
from ivr.rtp.srtp import SrtpContext
from tests.rtp.fakes import FakePorts

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
OURS, THEIRS = DtlsCertificate.generate(NOW), DtlsCertificate.generate(NOW)
PEER = ("127.0.0.7", 50000)


class NoClock:
    def register(self, session):
        pass

    def unregister(self, session):
        pass


class Browser:
    """The controlling, DTLS-client side, as a browser would be."""

    def __init__(self, creds: IceCredentials):
        self.creds = creds
        self.dtls = DtlsEndpoint(THEIRS, DtlsRole.CLIENT, parse_fingerprint(OURS.sdp_fingerprint))
        self.srtp = None

    def check(self, use_candidate=True, pwd=None):
        m = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        m.attributes["USERNAME"] = f"{self.creds.ufrag}:brws"
        m.attributes["PRIORITY"] = 100
        m.attributes["ICE-CONTROLLING"] = 1
        if use_candidate:
            m.attributes["USE-CANDIDATE"] = None
        m.add_message_integrity((pwd or self.creds.pwd).encode())
        return bytes(m)


def setup():
    clock = task.Clock()
    clock.advance(1000)
    ports = FakePorts()
    session = RtpSession(clock, NoClock(), ports=ports)
    creds = IceCredentials.new()
    ice = IceLiteAgent(creds, "brws", now=clock.seconds())
    dtls = DtlsEndpoint(OURS, DtlsRole.SERVER, parse_fingerprint(THEIRS.sdp_fingerprint))
    session.set_webrtc(ice, dtls)
    session.set_remote("0.0.0.0", 9, 0, "PCMU", telephone_event_pt=126, rtcp_mux=True)
    return clock, session, ports.pair.rtp, Browser(creds)


def feed(session, data, addr=PEER):
    session._pair.rtp.protocol.datagramReceived(data, addr)


def run(clock, session, ticks):
    for _ in range(ticks):
        clock.advance(0.02)
        session.tick(1)


def sent_since(port, mark):
    return port.sent[mark:]


def handshake(clock, session, port, browser):
    feed(session, browser.check())
    flight = browser.dtls.start()
    for _ in range(10):
        mark = len(port.sent)
        for d in flight:
            feed(session, d)
        flight = [x for d, addr in sent_since(port, mark) for x in browser.dtls.receive(d)]
        if not flight:
            break
    assert browser.dtls.state is DtlsState.CONNECTED
    browser.srtp = SrtpContext.from_keys(browser.dtls.keys)


def test_nothing_is_sent_before_ice_and_dtls_and_then_only_srtp_to_the_nominated_address():
    clock, session, port, browser = setup()
    run(clock, session, 300)  # 6 s: RTCP would be due, RTP every tick
    assert port.sent == []
    feed(session, browser.check(use_candidate=False))
    (reply, addr), = port.sent
    assert addr == PEER and stun.parse_message(reply).message_class == stun.Class.RESPONSE
    run(clock, session, 50)
    assert len(port.sent) == 1  # checked, not keyed: still nothing
    handshake(clock, session, port, browser)
    assert session.encrypted and session.webrtc_ready
    mark = len(port.sent)
    run(clock, session, 300)
    media = sent_since(port, mark)
    assert len(media) >= 300 and {addr for _, addr in media} == {PEER}
    rtp = [browser.srtp.unprotect(d) for d, _ in media if not 192 <= d[1] <= 223]
    assert len(rtp) == 300 and all(p is not None for p in rtp)
    assert {RtpPacket.parse(p).payload_type for p in rtp} == {0}
    rtcp = [browser.srtp.unprotect_rtcp(d) for d, _ in media if 192 <= d[1] <= 223]
    assert rtcp and all(p is not None for p in rtcp)  # SRTCP, muxed
    assert session.stats()["media_encryption"] == "dtls-srtp"


def test_the_peers_srtp_is_heard_and_plain_rtp_is_not():
    clock, session, port, browser = setup()
    heard = []
    session.add_audio_listener(heard.append)
    handshake(clock, session, port, browser)
    plain = RtpPacket(payload_type=0, sequence=1, timestamp=160, ssrc=5,
                      payload=b"\x00" * 160).serialize()
    feed(session, plain)  # plain RTP on a WebRTC stream is dropped
    assert heard == []
    for i in range(3):
        packet = RtpPacket(payload_type=0, sequence=10 + i, timestamp=160 * i, ssrc=5,
                           payload=b"\x10" * 160).serialize()
        feed(session, browser.srtp.protect(packet))
    assert len(heard) == 3 and all(np.all(f == heard[0][0]) for f in heard)


def test_rtp_before_the_keys_is_dropped_and_counted():
    clock, session, port, browser = setup()
    feed(session, b"\x80\x00" + bytes(170))
    assert session.stats()["rtp_before_keys"] == 1


def test_dtls_from_an_address_that_passed_no_check_is_ignored():
    clock, session, port, browser = setup()
    feed(session, browser.dtls.start()[0])
    assert port.sent == [] and session.stats()["dtls_unchecked"] == 1


def test_a_check_with_the_wrong_password_nominates_nothing():
    clock, session, port, browser = setup()
    feed(session, browser.check(pwd="not-the-right-password-at-all"))
    (reply, _), = port.sent
    assert stun.parse_message(reply).error_code == 401
    assert session.stats()["ice_nominated"] is None


def test_consent_expires_30_s_after_the_last_check_and_ends_the_media():
    clock, session, port, browser = setup()
    lost = []
    session.on_timeout(lambda: lost.append(clock.seconds()))
    handshake(clock, session, port, browser)
    seq = [0]

    def talk(ticks):  # RTP keeps arriving all along: only consent can end the media
        for _ in range(ticks):
            seq[0] += 1
            packet = RtpPacket(payload_type=0, sequence=seq[0], timestamp=160 * seq[0],
                               ssrc=5, payload=b"\x10" * 160).serialize()
            feed(session, browser.srtp.protect(packet))
            run(clock, session, 1)

    for _ in range(8):  # the browser checks every 5 s: consent holds for 40 s
        talk(250)
        feed(session, browser.check())
    assert lost == []
    last_check = clock.seconds()
    talk(1510)  # 30.2 s without a check
    assert len(lost) == 1 and 30.0 <= lost[0] - last_check <= 30.2
    assert session.stats()["consent_expired"] == 1
    mark = len(port.sent)
    talk(50)
    assert sent_since(port, mark) == []  # RFC 7675: stop sending
