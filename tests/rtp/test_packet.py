import struct

import pytest
from hypothesis import given, strategies as st

from ivr.rtp.packet import (Bye, ReceiverReport, ReportBlock, RtcpUnknown, RtpError, RtpPacket,
                            SdesChunk, SenderReport, SourceDescription, build_compound, is_rtcp,
                            ntp_from_unix, ntp_middle32, parse_rtcp)

from .pcaputil import fixture_path, read_udp


def test_parse_known_header():
    raw = bytes.fromhex("80e520cd00014f000e05384e0a0a0000")
    p = RtpPacket.parse(raw)
    assert (p.payload_type, p.marker, p.sequence, p.timestamp, p.ssrc) == (101, True, 8397, 85760, 0x0E05384E)
    assert p.payload == bytes.fromhex("0a0a0000")
    assert p.serialize() == raw


def test_csrc_extension_padding_round_trip():
    p = RtpPacket(payload_type=0, sequence=65535, timestamp=0xFFFFFFFF, ssrc=1, payload=b"\xff" * 160,
                  marker=True, csrc=(7, 8, 9), extension_profile=0xBEDE, extension_data=b"\x10\x01\x00\x00",
                  padding=4)
    raw = p.serialize()
    assert raw[0] == 0x80 | 0x20 | 0x10 | 3
    assert raw[-1] == 4 and len(raw) == 12 + 12 + 8 + 160 + 4
    assert RtpPacket.parse(raw) == p


@pytest.mark.parametrize("raw", [
    b"", b"\x80\x00", bytes(12),  # version 0
    bytes([0x8F, 0]) + bytes(10),  # 15 CSRCs, none present
    bytes([0x90, 0]) + bytes(10) + b"\x00\x00\x00\x05",  # extension longer than packet
    bytes([0xA0, 0]) + bytes(10),  # padding bit, count 0
    bytes([0xA0, 0]) + bytes(10) + b"\x00\x09",  # padding longer than payload
])
def test_garbage_raises_rtp_error(raw):
    with pytest.raises(RtpError):
        RtpPacket.parse(raw)


@given(st.binary(max_size=80))
def test_fuzz_never_raises_anything_else(raw):
    try:
        p = RtpPacket.parse(raw)
    except RtpError:
        return
    assert RtpPacket.parse(p.serialize()) == p


@given(st.binary(max_size=120))
def test_fuzz_rtcp(raw):
    try:
        parse_rtcp(raw)
    except RtpError:
        pass


def test_misuse_is_value_error():
    with pytest.raises(ValueError):
        RtpPacket(payload_type=128, sequence=0, timestamp=0, ssrc=0)
    with pytest.raises(ValueError):
        RtpPacket(payload_type=0, sequence=70000, timestamp=0, ssrc=0)
    with pytest.raises(ValueError):
        ReportBlock(1, 0, 1 << 23, 0, 0)


def test_sipp_pcap_round_trip():
    for r in read_udp(fixture_path("dtmf_2833_pound.pcap")):
        assert RtpPacket.parse(r.payload).serialize() == r.payload


def test_is_rtcp():
    assert is_rtcp(bytes([0x81, 200, 0, 1]))
    assert not is_rtcp(bytes([0x80, 0, 0, 1]))
    assert not is_rtcp(bytes([0x80, 0x80 | 101]))  # marker + PT 101 is 229: RTP


def test_compound_round_trip():
    block = ReportBlock(ssrc=0x1234, fraction_lost=25, cumulative_lost=-3, highest_seq=70000,
                        jitter=42, lsr=0xAABBCCDD, dlsr=65536)
    sr = SenderReport(ssrc=0x99, ntp_timestamp=ntp_from_unix(1_700_000_000.5), rtp_timestamp=123456,
                      packet_count=250, octet_count=40000, reports=(block,))
    sdes = SourceDescription.cname(0x99, "ivr@127.0.0.1")
    bye = Bye((0x99,), "call ended")
    raw = build_compound([sr, sdes, bye])
    assert len(raw) % 4 == 0
    parsed = parse_rtcp(raw)
    assert parsed == [sr, sdes, bye]
    assert parsed[1].chunks[0].cname == "ivr@127.0.0.1"
    assert build_compound(parsed) == raw
    rr = ReceiverReport(ssrc=5, reports=(block, block))
    assert parse_rtcp(build_compound([rr, Bye((5, 6))])) == [rr, Bye((5, 6))]


def test_sr_wire_layout():
    sr = SenderReport(ssrc=1, ntp_timestamp=(5 << 32) | 7, rtp_timestamp=2, packet_count=3, octet_count=4)
    raw = build_compound([sr])
    assert raw == bytes.fromhex("80c80006" "00000001" "00000005" "00000007" "00000002" "00000003" "00000004")


def test_report_block_wire_layout():
    rr = ReceiverReport(ssrc=1, reports=(ReportBlock(2, 0x40, -1, 0x10005, 10, 0, 0),))
    raw = build_compound([rr])
    assert raw[:8] == bytes.fromhex("81c9000700000001")
    assert raw[8:16] == bytes.fromhex("0000000240ffffff")


def test_unknown_rtcp_kept_and_sdes_multiple_items():
    app = RtcpUnknown(204, 1, b"\x00\x00\x00\x01nameDATA")
    sdes = SourceDescription((SdesChunk(1, ((1, b"a@b"), (6, b"tool"))), SdesChunk(2, ())))
    assert parse_rtcp(build_compound([app, sdes])) == [app, sdes]


@pytest.mark.parametrize("raw", [
    b"\x80\xc8", bytes([0x80, 200, 0, 9]) + bytes(8), bytes([0x40, 200, 0, 0]),
    bytes([0x81, 201, 0, 1, 0, 0, 0, 1]),  # RR claims a block it lacks
    bytes([0x81, 202, 0, 2, 0, 0, 0, 1, 1, 9, 0, 0]),  # SDES item overruns
    bytes([0x80, 100, 0, 0]),  # not an RTCP type
])
def test_rtcp_garbage(raw):
    with pytest.raises(RtpError):
        parse_rtcp(raw)


def test_ntp_helpers():
    ntp = ntp_from_unix(0.25)
    assert ntp >> 32 == 2208988800 and ntp & 0xFFFFFFFF == 1 << 30
    assert ntp_middle32(ntp) == ((2208988800 & 0xFFFF) << 16) | 0x4000
