"""SRTP inside the batched socket I/O: with the native backend the media clock's batch
protects each packet in C just before ``sendmmsg`` and the receiver unprotects right after
``recvmmsg`` (libsrtp itself, pylibsrtp's copy); with the pure one sessions protect and
unprotect in Python as before.  Both must put the same bytes on the wire, hear the same
audio and drop and count the same forged and replayed packets.  Real 127.0.0.1 sockets, the
media clock on task.Clock; the tests taking ``media_io`` run native and pure."""
from __future__ import annotations

import random
import struct

import numpy as np
import pytest
from aioice import stun
from twisted.internet import task

from ivr.media import g711
from ivr.media.player import PcmSource
from ivr.rtp import mmsg
from ivr.rtp.clock import MediaClock
from ivr.rtp.dtls import DtlsEndpoint, DtlsRole, DtlsState, parse_fingerprint
from ivr.rtp.ice import IceCredentials, IceLiteAgent
from ivr.rtp.ports import PortAllocator, PortsExhausted
from ivr.rtp.receiver import MediaReceiver
from ivr.rtp.sendbatch import SendBatch
from ivr.rtp.session import RtpSession
from ivr.rtp.srtp import SrtpContext
from tests.rtp.conftest import backend
from tests.rtp.sockets import drain_data as drain
from tests.rtp.sockets import udp

pytestmark = pytest.mark.parametrize("media_io", ["native", "pure"], indirect=True)

SUITE = "AES_CM_128_HMAC_SHA1_80"
KEY_A = bytes(range(30))          # fixed keys: libsrtp's AES_CM output is then fixed too
KEY_B = bytes(range(100, 130))
TONE = (6000 * np.sin(np.arange(1600) * 2 * np.pi * 1000 / 8000)).astype(np.int16)
HEARD = g711.ulaw_decode(g711.ulaw_encode(TONE)).tobytes()


class SpyIO:
    """The backend under test, counting its calls (SRTP ones included)."""

    def __init__(self, io):
        self.io, self.name, self.srtp = io, io.name, io.srtp
        self.calls: dict[str, int] = {}

    def __getattr__(self, name):
        method = getattr(self.io, name)

        def spied(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return method(*args, **kwargs)
        return spied
def rtp(seq: int, ts: int = 0, ssrc: int = 0x1234, payload: bytes = b"\xff" * 160) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, ts, ssrc) + payload


class Harness:
    def __init__(self, io):
        self.clock = task.Clock()
        self.io = SpyIO(io)
        self.rx = MediaReceiver(io=self.io)
        self.mc = MediaClock(self.clock, receiver=self.rx, io=self.io)
        self.ports = self._range()

    def _range(self):
        # below the kernel's ephemeral range (32768-60999), where port-0 sockets of other
        # processes land; whatever seeded the global random
        low = 20000 + 2 * random.SystemRandom().randrange(6000)
        return PortAllocator(low, low + 200, receiver=self.rx)

    def session(self, seed):
        for _ in range(4):  # another process on a shared machine may hold a whole range
            try:
                return RtpSession(self.clock, self.mc, ports=self.ports,
                                  rng=random.Random(seed), media_timeout=0)
            except PortsExhausted:
                self.ports = self._range()
        raise AssertionError("no free port range")

    def run(self, periods):
        for _ in range(periods):
            self.clock.advance(0.02 + 1e-9)


def test_an_srtp_pair_round_trips_audio_through_the_batches(media_io):
    h = Harness(media_io)
    a, b = h.session(1), h.session(2)
    a.set_srtp(SrtpContext(SUITE, KEY_A, KEY_B))
    b.set_srtp(SrtpContext(SUITE, KEY_B, KEY_A))
    heard = []
    b.add_audio_listener(heard.append)
    a.set_remote("127.0.0.1", b.local_port, 0, "PCMU")
    b.set_remote("127.0.0.1", a.local_port, 0, "PCMU")
    a.play(PcmSource(TONE))
    h.run(15)
    assert HEARD in np.concatenate(heard).tobytes()
    sa, sb = a.stats(), b.stats()
    for s in (sa, sb):
        assert s["srtp_auth_failures"] == s["srtp_replays"] == s["srtp_bad_packets"] == 0
        assert s["srtp_protect_errors"] == 0
    assert sb["packets_received"] == sa["packets_sent"] >= 14
    native = media_io.name == "native"
    # the native backend protected in its batches and unprotected in its reads, in C
    assert bool(h.io.calls.get("send_many_srtp")) is native
    assert bool(h.io.calls.get("recv_many_srtp")) is native
    assert h.mc.batch.srtp is native and (len(h.rx._srtp) == 2) is native
    a.close()
    b.close()
    assert h.rx._srtp == {}


def wire_bytes(io, periods=8):
    """What a keyed session sends over ``periods`` ticks (fixed SSRC, sequence, keys)."""
    h = Harness(io)
    a = h.session(7)
    wire = udp()
    a.set_srtp(SrtpContext(SUITE, KEY_A, KEY_B))
    a.set_remote("127.0.0.1", wire.getsockname()[1], 0, "PCMU", telephone_event_pt=101)
    a.play(PcmSource(TONE))
    h.run(3)
    a.send_dtmf("5", duration_ms=40)
    h.run(periods)
    a.close()
    packets = drain(wire)
    wire.close()
    return packets


def test_the_native_batch_puts_the_pure_paths_bytes_on_the_wire(media_io):
    """libsrtp is deterministic for AES_CM given key, SSRC and index: the same session's
    packets protected in C in the batch and by SrtpContext in Python are the same bytes."""
    got = wire_bytes(media_io)
    want = wire_bytes(mmsg.PurePythonIO())
    assert len(got) >= 10 and got == want
    rx = SrtpContext(SUITE, KEY_B, KEY_A)
    plain = [rx.unprotect(p) for p in got]
    assert all(p is not None and p[0] == 0x80 for p in plain)
    assert any(p[1] & 0x7F == 101 for p in plain)  # the RFC 4733 event went protected too
    native = wire_bytes(backend("native"))
    assert native == want


def test_wrong_keys_and_replays_are_dropped_and_counted(media_io):
    h = Harness(media_io)
    b = h.session(2)
    b.set_srtp(SrtpContext(SUITE, KEY_B, KEY_A))
    b.set_remote("127.0.0.1", 9, 0, "PCMU")  # where it sends does not matter here
    heard = []
    b.add_audio_listener(heard.append)
    peer = udp()
    dest = ("127.0.0.1", b.local_port)
    good = SrtpContext(SUITE, KEY_A, KEY_B)
    wrong = SrtpContext(SUITE, bytes(30), KEY_B)
    packets = [good.protect(rtp(seq, seq * 160)) for seq in range(1, 201)]
    for p in packets[:150]:
        peer.sendto(p, dest)
    h.run(25)  # 8 datagrams per read, a read per firing
    for p in (packets[149], packets[100]):  # a replay in the window, and an older copy
        peer.sendto(p, dest)
    peer.sendto(packets[5], dest)  # older than the 128-packet window (RFC 3711 3.3.2)
    for seq in range(201, 204):  # forged: another key
        peer.sendto(wrong.protect(rtp(seq, seq * 160)), dest)
    peer.sendto(b"\x80" * 2000, dest)  # too long to be SRTP
    h.run(3)
    s = b.stats()
    assert s["packets_received"] == 150 and len(heard) == 150
    assert s["srtp_replays"] == 3
    assert s["srtp_auth_failures"] == 3
    assert s["srtp_bad_packets"] == 1
    assert bool(h.io.calls.get("recv_many_srtp")) is (media_io.name == "native")
    b.close()
    peer.close()


def test_stun_and_dtls_pass_through_untouched_and_srtcp_is_unprotected(media_io):
    io = SpyIO(media_io)
    rx = MediaReceiver(io=io)
    sock, peer = udp(), udp()
    raw, rtps, rtcps = [], [], []
    rx.add(sock, lambda data, addr: raw.append(data))
    ctx = SrtpContext(SUITE, KEY_B, KEY_A)
    native = rx.set_srtp(sock, ctx, lambda d, a: rtps.append(d), lambda d, a: rtcps.append(d))
    assert native is (media_io.name == "native")
    tx = SrtpContext(SUITE, KEY_A, KEY_B)
    stun = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12)
    dtls = b"\x16\xfe\xfd" + bytes(20)
    rr = struct.pack("!BBHI", 0x80, 201, 1, 0x1234)  # an empty RTCP receiver report
    srtp_packet, srtcp_packet = tx.protect(rtp(1)), tx.protect_rtcp(rr)
    for data in (stun, dtls, srtp_packet, srtcp_packet):
        peer.sendto(data, sock.getsockname())
    assert rx.poll() == 4
    if native:
        assert raw == [stun, dtls] and rtps == [rtp(1)] and rtcps == [rr]
    else:  # the socket's handler gets everything as it arrived (SRTP then in Python)
        assert raw == [stun, dtls, srtp_packet, srtcp_packet] and rtps == rtcps == []
    # and without a context, again everything as it arrived
    rx.set_srtp(sock, None, None, None)
    peer.sendto(srtp_packet, sock.getsockname())
    rx.poll()
    assert raw[-1] == srtp_packet
    rx.close()
    sock.close()
    peer.close()


def test_a_plain_session_beside_an_srtp_one_stays_plain_both_ways(media_io):
    h = Harness(media_io)
    a, b = h.session(1), h.session(2)  # SRTP
    c, d = h.session(3), h.session(4)  # plain
    a.set_srtp(SrtpContext(SUITE, KEY_A, KEY_B))
    b.set_srtp(SrtpContext(SUITE, KEY_B, KEY_A))
    wire = udp()
    for x, y in ((a, b), (b, a), (d, c)):
        x.set_remote("127.0.0.1", y.local_port, 0, "PCMU")
    c.set_remote("127.0.0.1", wire.getsockname()[1], 0, "PCMU")
    assert "_send_rtp" not in vars(c) and "_rtp_received" not in vars(c)
    heard = []
    d_heard = []
    b.add_audio_listener(heard.append)
    c.add_audio_listener(d_heard.append)
    a.play(PcmSource(TONE))
    d.play(PcmSource(TONE))
    h.run(12)
    plain = drain(wire)
    assert plain and all(p[0] == 0x80 and len(p) == 172 for p in plain)  # no tag: plain RTP
    assert HEARD in np.concatenate(heard).tobytes()
    assert HEARD in np.concatenate(d_heard).tobytes()
    for s in (x.stats() for x in (a, b, c, d)):
        assert s.get("srtp_auth_failures", 0) == 0 and s["bad_packets"] == 0
    for x in (a, b, c, d):
        x.close()
    wire.close()


def test_a_packet_libsrtp_refuses_is_not_sent_and_counts_in_its_context(media_io):
    batch = SendBatch(media_io)
    sock, dest = udp(), udp()
    ctx = SrtpContext(SUITE, KEY_A, KEY_B)
    counters = {"send_errors": 0}
    batch.open()
    if batch.srtp:
        batch.add_srtp(sock, rtp(1, payload=bytes(1400)), dest.getsockname(), counters, ctx)
        batch.add_srtp(sock, rtp(2), dest.getsockname(), counters, ctx)
    batch.add(sock, rtp(3), dest.getsockname(), counters)  # plain, in the same batch
    batch.close()
    got = drain(dest)
    if batch.srtp:
        assert ctx.protect_errors == 1 and counters["send_errors"] == 0
        assert got == [SrtpContext(SUITE, KEY_A, KEY_B).protect(rtp(2)), rtp(3)]
    else:
        assert media_io.name == "pure" and got == [rtp(3)]
    sock.close()
    dest.close()


def test_what_sendmmsg_did_not_take_goes_by_sendto_protected(media_io):
    """A datagram the C side could not send (here: an address it cannot pack) is sent by
    Python's sendto: the protected bytes, never the plain ones."""
    batch = SendBatch(media_io)
    sock, dest = udp(), udp()
    ctx = SrtpContext(SUITE, KEY_A, KEY_B)
    counters = {"send_errors": 0}
    batch.open()
    if batch.srtp:
        batch.add_srtp(sock, rtp(1), ("localhost", dest.getsockname()[1]), counters, ctx)
    else:
        batch.add(sock, ctx.protect(rtp(1)), ("localhost", dest.getsockname()[1]), counters)
    batch.add(sock, rtp(2), dest.getsockname(), counters)
    batch.close()
    want = SrtpContext(SUITE, KEY_A, KEY_B).protect(rtp(1))
    assert sorted(drain(dest)) == sorted([want, rtp(2)])
    assert counters["send_errors"] == 0 and ctx.protect_errors == 0
    assert batch.srtp is (media_io.name == "native")
    sock.close()
    dest.close()


def test_a_webrtc_stream_over_the_batches_demuxes_stun_and_dtls_and_decrypts_srtp(media_io):
    """ICE, DTLS and SRTP on one real socket read by the receiver: STUN and DTLS reach the
    session's demultiplexer as they arrived, SRTP is decrypted (natively with the native
    backend) and a consent check after keying is still answered."""
    from tests.rtp.test_webrtc_session import OURS, THEIRS, Browser  # its certificates

    h = Harness(media_io)
    h.clock.advance(1000)
    session = h.session(5)
    creds = IceCredentials.new()
    session.set_webrtc(IceLiteAgent(creds, "brws", now=h.clock.seconds()),
                       DtlsEndpoint(OURS, DtlsRole.SERVER, parse_fingerprint(THEIRS.sdp_fingerprint)))
    session.set_remote("0.0.0.0", 9, 0, "PCMU", rtcp_mux=True)
    heard = []
    session.add_audio_listener(heard.append)
    browser, sock = Browser(creds), udp()
    dest = ("127.0.0.1", session.local_port)

    def exchange(datagrams):
        for d in datagrams:
            sock.sendto(d, dest)
        h.run(1)
        return drain(sock)

    replies = exchange([browser.check()])
    assert stun.parse_message(replies[0]).message_class == stun.Class.RESPONSE
    flight = browser.dtls.start()
    for _ in range(10):
        flight = [x for d in exchange(flight) if 20 <= d[0] < 64 for x in browser.dtls.receive(d)]
        if not flight:
            break
    assert browser.dtls.state is DtlsState.CONNECTED and session.encrypted
    browser.srtp = SrtpContext.from_keys(browser.dtls.keys)
    payload = g711.ulaw_encode(TONE[:160]).tobytes()
    packets = [browser.srtp.protect(rtp(seq, seq * 160, payload=payload)) for seq in range(1, 6)]
    got = exchange(packets + [browser.check()])
    assert len(heard) == 5 and heard[0].tobytes() == g711.ulaw_decode(payload[:160]).tobytes()
    stun_replies = [d for d in got if d[0] < 4]
    media = [browser.srtp.unprotect(d) for d in got if 128 <= d[0] < 192 and not 192 <= d[1] <= 223]
    assert len(stun_replies) == 1 and media and all(m is not None for m in media)
    assert session.stats()["srtp_auth_failures"] == 0
    assert bool(h.io.calls.get("recv_many_srtp")) is (media_io.name == "native")
    session.close()
    sock.close()
