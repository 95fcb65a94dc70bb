"""ivr.rtp.srtp over libsrtp: RFC 3711 known answers, round trips per suite, drops counted."""
import os
import struct
import subprocess
import sys

import pytest

from ivr.rtp.srtp import SUITE_PROFILES, SrtpContext, supported_suites
from ivr.sdp.crypto import SUITES, SrtpKeys

# RFC 3711 appendix B.3's master key and salt; the packet is libsrtp's known answer for it
# (srtp_validate in test/srtp_driver.c): SSRC 0xcafebabe, sequence 0x1234, ROC 0, the
# AES-CM keystream of appendix B.2's construction over the session keys B.3 derives.
B3_MASTER = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE4139") + bytes.fromhex("0EC675AD498AFEEBB6960B3AABE6")
RTP_PLAIN = bytes.fromhex("800f1234decafbadcafebabe") + b"\xab" * 16
SRTP_80 = bytes.fromhex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb")
SRTP_32 = SRTP_80[:32]  # same keystream, HMAC-SHA1 cut to 32 bits
RTCP_PLAIN = bytes.fromhex("81c8000bcafebabe") + b"\xab" * 16
SRTCP_80 = bytes.fromhex("81c8000bcafebabe7128035be487b9bdbef89041f977a5a880000001993e08cd54d6c1230798")


def pair(suite, key_a=None, key_b=None):
    """Two ends of one stream: a's outbound key is b's inbound and the reverse."""
    key_a = key_a or os.urandom(SUITES[suite].inline_length)
    key_b = key_b or os.urandom(SUITES[suite].inline_length)
    return SrtpContext(suite, key_a, key_b), SrtpContext(suite, key_b, key_a)


def rtp(seq, payload=b"\xd5" * 160, ssrc=0x11223344, pt=0):
    return struct.pack("!BBHII", 0x80, pt, seq, seq * 160, ssrc) + payload


def test_rfc3711_known_packet_aes_cm_80():
    a = SrtpContext("AES_CM_128_HMAC_SHA1_80", B3_MASTER, B3_MASTER)
    assert a.protect(RTP_PLAIN) == SRTP_80
    assert a.unprotect(SRTP_80) == RTP_PLAIN
    assert a.protect_rtcp(RTCP_PLAIN) == SRTCP_80
    assert a.unprotect_rtcp(SRTCP_80) == RTCP_PLAIN


def test_rfc3711_known_packet_aes_cm_32():
    a = SrtpContext("AES_CM_128_HMAC_SHA1_32", B3_MASTER, B3_MASTER)
    assert a.protect(RTP_PLAIN) == SRTP_32
    assert a.unprotect(SRTP_32) == RTP_PLAIN
    # SRTCP keeps its 80-bit tag under the _32 suite (RFC 4568 6.2.2)
    assert a.protect_rtcp(RTCP_PLAIN) == SRTCP_80


def test_a_damaged_known_packet_fails_authentication():
    a = SrtpContext("AES_CM_128_HMAC_SHA1_80", B3_MASTER, B3_MASTER)
    bad = bytearray(SRTP_80)
    bad[15] ^= 1
    assert a.unprotect(bytes(bad)) is None and a.auth_failures == 1


def test_every_sdes_suite_is_in_the_library_with_the_sdp_key_length():
    assert set(SUITE_PROFILES) == set(SUITES)
    assert set(supported_suites()) == set(SUITES)  # this pylibsrtp wheel has GCM
    for name, suite in SUITES.items():
        with pytest.raises(ValueError):
            SrtpContext(name, bytes(suite.inline_length - 1), bytes(suite.inline_length))
        SrtpContext(name, bytes(suite.inline_length), bytes(suite.inline_length))
    with pytest.raises(ValueError):
        SrtpContext("F8_128_HMAC_SHA1_80", bytes(30), bytes(30))


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_round_trip_both_ways(suite):
    a, b = pair(suite)
    for seq in range(1, 60):
        packet = rtp(seq, os.urandom(160))
        wire = a.protect(packet)
        assert wire != packet and wire[:12] == packet[:12] and packet[12:] not in wire
        assert b.unprotect(wire) == packet
        back = b.protect(rtp(seq, ssrc=0x55667788))
        assert a.unprotect(back) == rtp(seq, ssrc=0x55667788)
    report = RTCP_PLAIN
    assert b.unprotect_rtcp(a.protect_rtcp(report)) == report
    assert a.stats()["srtp_auth_failures"] == b.stats()["srtp_auth_failures"] == 0


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_wrong_key_is_dropped_and_counted(suite):
    a, _ = pair(suite)
    eve, _ = pair(suite)  # another key entirely
    wire = a.protect(rtp(1))
    assert eve.unprotect(wire) is None
    assert eve.unprotect_rtcp(a.protect_rtcp(RTCP_PLAIN)) is None
    assert eve.auth_failures == 2 and eve.replays == 0


def test_replays_are_dropped_and_counted():
    a, b = pair("AES_CM_128_HMAC_SHA1_80")
    first, second = a.protect(rtp(100)), a.protect(rtp(101))
    assert b.unprotect(first) is not None and b.unprotect(second) is not None
    assert b.unprotect(first) is None and b.unprotect(second) is None
    assert b.replays == 2 and b.auth_failures == 0
    # far behind the window (128 packets) is "too old", a replay too
    late = a.protect(rtp(102))
    for seq in range(103, 400):
        assert b.unprotect(a.protect(rtp(seq))) is not None
    assert b.unprotect(late) is None and b.replays == 3
    report = a.protect_rtcp(RTCP_PLAIN)
    assert b.unprotect_rtcp(report) == RTCP_PLAIN
    assert b.unprotect_rtcp(report) is None and b.replays == 4


def test_plain_and_garbage_packets_are_dropped_and_counted():
    _, b = pair("AES_CM_128_HMAC_SHA1_80")
    for junk in (rtp(1), b"", b"\x80", bytes(11), os.urandom(3000), b"\x80\x00" + os.urandom(40)):
        assert b.unprotect(junk) is None
    assert b.auth_failures + b.bad_packets == 6
    assert b.unprotect("not bytes") is None  # misuse is counted, not raised
    assert b.protect(b"") is None and b.protect_errors == 1


def test_repr_shows_no_key():
    key = bytes(range(30))
    assert repr(SrtpContext("AES_CM_128_HMAC_SHA1_80", key, key)) == "<SrtpContext AES_CM_128_HMAC_SHA1_80>"


def test_from_negotiated_keys():
    a, b = os.urandom(30), os.urandom(30)
    ours = SrtpContext.from_keys(SrtpKeys("AES_CM_128_HMAC_SHA1_80", 1, a, b))
    theirs = SrtpContext.from_keys(SrtpKeys("AES_CM_128_HMAC_SHA1_80", 1, b, a))
    assert theirs.unprotect(ours.protect(rtp(7))) == rtp(7)


def test_srtp_module_does_not_import_twisted():
    code = ("import sys, ivr.rtp.srtp, ivr.sdp.crypto\n"
            "raise SystemExit(1 if [m for m in sys.modules if m.startswith('twisted')] else 0)\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_per_packet_calls_go_to_libsrtp_directly_in_one_reused_buffer(monkeypatch):
    """The fast path (bench B7) does not go through pylibsrtp's Session methods, which
    allocate per call; their results and drop counts are the same."""
    import pylibsrtp

    a, b = pair("AES_CM_128_HMAC_SHA1_80")

    def refuse(*args):
        raise AssertionError("pylibsrtp.Session's per-packet method was used")

    for name in ("protect", "unprotect", "protect_rtcp", "unprotect_rtcp"):
        monkeypatch.setattr(pylibsrtp.Session, name, refuse)
    wire = [a.protect(rtp(seq)) for seq in (1, 2)]
    assert [b.unprotect(w) for w in wire] == [rtp(1), rtp(2)]
    assert b.unprotect(wire[0]) is None and b.replays == 1
    report = a.protect_rtcp(RTCP_PLAIN)
    assert b.unprotect_rtcp(report) == RTCP_PLAIN
    damaged = a.protect(rtp(3))
    assert b.unprotect(damaged[:-1] + bytes([damaged[-1] ^ 1])) is None
    assert b.auth_failures == 1 and b.bad_packets == 0


def test_without_the_bindings_session_handle_the_session_methods_do_the_same():
    a, b = pair("AES_CM_128_HMAC_SHA1_80")
    a._fallback = b._fallback = True  # as if pylibsrtp stopped exposing Session._srtp
    first = a.protect(rtp(7))
    assert b.unprotect(first) == rtp(7) and b.unprotect(first) is None and b.replays == 1
    assert b.unprotect_rtcp(a.protect_rtcp(RTCP_PLAIN)) == RTCP_PLAIN
    assert b.unprotect(rtp(8)) is None and b.auth_failures == 1
