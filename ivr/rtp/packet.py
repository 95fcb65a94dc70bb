"""RTP and RTCP packets (RFC 3550): frozen dataclasses, ``parse`` and ``serialize``.

Pure: bytes in, values out.  Garbage from the wire raises ``RtpError``; building a packet with
out-of-range fields (our own misuse) raises ``ValueError``.

RTCP covers what a telephony endpoint needs: SR, RR (report blocks), SDES (CNAME and other
items), BYE, and compound packets.  Other RTCP types (APP, feedback, XR) are kept as
``RtcpUnknown`` so a compound packet that carries them still parses.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Union

__all__ = [
    "RtpError", "RtpPacket", "ReportBlock", "SenderReport", "ReceiverReport", "SdesChunk",
    "SourceDescription", "Bye", "RtcpUnknown", "RtcpPacket", "parse_rtcp", "build_compound",
    "is_rtcp", "RTCP_SR", "RTCP_RR", "RTCP_SDES", "RTCP_BYE", "SDES_CNAME", "NTP_EPOCH_OFFSET",
    "ntp_from_unix", "ntp_middle32",
]

RTP_VERSION = 2
RTCP_SR, RTCP_RR, RTCP_SDES, RTCP_BYE, RTCP_APP = 200, 201, 202, 203, 204
SDES_CNAME = 1
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01

_RTP_HEADER = struct.Struct("!BBHII")
_U32 = struct.Struct("!I")


class RtpError(Exception):
    """The peer sent bytes that are not a valid RTP/RTCP packet."""


def _check(name: str, value: int, bits: int) -> None:
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{name}={value!r} does not fit in {bits} bits")


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None  # None = no header extension
    extension_data: bytes = b""
    padding: int = 0  # number of padding octets (including the count octet); 0 = none

    def __post_init__(self) -> None:
        _check("payload_type", self.payload_type, 7)
        _check("sequence", self.sequence, 16)
        _check("timestamp", self.timestamp, 32)
        _check("ssrc", self.ssrc, 32)
        if len(self.csrc) > 15:
            raise ValueError("at most 15 CSRCs")
        for c in self.csrc:
            _check("csrc", c, 32)
        if self.extension_profile is not None:
            _check("extension_profile", self.extension_profile, 16)
            if len(self.extension_data) % 4:
                raise ValueError("extension data must be a multiple of 4 octets")
        if not 0 <= self.padding <= 255:
            raise ValueError("padding must be 0..255 octets")

    @classmethod
    def parse(cls, data: bytes) -> "RtpPacket":
        if len(data) < 12:
            raise RtpError(f"RTP packet too short ({len(data)} octets)")
        b0, b1, seq, ts, ssrc = _RTP_HEADER.unpack_from(data)
        if b0 >> 6 != RTP_VERSION:
            raise RtpError(f"RTP version {b0 >> 6}, expected 2")
        cc = b0 & 0x0F
        pos = 12 + 4 * cc
        if len(data) < pos:
            raise RtpError("RTP packet truncated in CSRC list")
        csrc = struct.unpack_from(f"!{cc}I", data, 12)
        profile = None
        ext = b""
        if b0 & 0x10:
            if len(data) < pos + 4:
                raise RtpError("RTP packet truncated in extension header")
            profile, words = struct.unpack_from("!HH", data, pos)
            pos += 4
            if len(data) < pos + 4 * words:
                raise RtpError("RTP packet truncated in extension")
            ext = bytes(data[pos:pos + 4 * words])
            pos += 4 * words
        end = len(data)
        padding = 0
        if b0 & 0x20:
            padding = data[-1]
            if padding == 0 or end - padding < pos:
                raise RtpError("RTP padding count is invalid")
            end -= padding
        return cls(payload_type=b1 & 0x7F, sequence=seq, timestamp=ts, ssrc=ssrc,
                   payload=bytes(data[pos:end]), marker=bool(b1 & 0x80), csrc=tuple(csrc),
                   extension_profile=profile, extension_data=ext, padding=padding)

    def serialize(self) -> bytes:
        b0 = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding:
            b0 |= 0x20
        if self.extension_profile is not None:
            b0 |= 0x10
        b1 = (0x80 if self.marker else 0) | self.payload_type
        parts = [_RTP_HEADER.pack(b0, b1, self.sequence, self.timestamp, self.ssrc)]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension_profile is not None:
            parts.append(struct.pack("!HH", self.extension_profile, len(self.extension_data) // 4))
            parts.append(self.extension_data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


def is_rtcp(data: bytes) -> bool:
    """True when a datagram on a muxed port is RTCP (RFC 5761 section 4: PT 192..223)."""
    return len(data) >= 2 and data[0] >> 6 == RTP_VERSION and 192 <= data[1] <= 223


# ---------------------------------------------------------------------------- RTCP
def ntp_from_unix(seconds: float) -> int:
    """64-bit NTP timestamp for a Unix time."""
    return int(round((seconds + NTP_EPOCH_OFFSET) * (1 << 32))) & 0xFFFFFFFFFFFFFFFF


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp (the LSR field of a report block)."""
    return (ntp >> 16) & 0xFFFFFFFF


_BLOCK = struct.Struct("!IIIIII")


@dataclass(frozen=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int  # 0..255 (lost fraction * 256)
    cumulative_lost: int  # signed 24-bit (negative when duplicates outnumber losses)
    highest_seq: int  # extended highest sequence number received
    jitter: int  # interarrival jitter in timestamp units
    lsr: int = 0
    dlsr: int = 0  # delay since last SR, in 1/65536 s

    def __post_init__(self) -> None:
        _check("fraction_lost", self.fraction_lost, 8)
        if not -(1 << 23) <= self.cumulative_lost < (1 << 23):
            raise ValueError("cumulative_lost does not fit in signed 24 bits")
        for name in ("ssrc", "highest_seq", "jitter", "lsr", "dlsr"):
            _check(name, getattr(self, name), 32)

    def pack(self) -> bytes:
        lost = (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF)
        return _BLOCK.pack(self.ssrc, lost, self.highest_seq, self.jitter, self.lsr, self.dlsr)

    @classmethod
    def unpack(cls, data: bytes, offset: int) -> "ReportBlock":
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cum = lost & 0xFFFFFF
        if cum & 0x800000:
            cum -= 1 << 24
        return cls(ssrc, lost >> 24, cum, highest, jitter, lsr, dlsr)


@dataclass(frozen=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True)
class SdesChunk:
    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()

    @property
    def cname(self) -> str | None:
        for kind, value in self.items:
            if kind == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(frozen=True)
class SourceDescription:
    chunks: tuple[SdesChunk, ...]

    @classmethod
    def cname(cls, ssrc: int, cname: str) -> "SourceDescription":
        return cls((SdesChunk(ssrc, ((SDES_CNAME, cname.encode("utf-8")),)),))


@dataclass(frozen=True)
class Bye:
    ssrcs: tuple[int, ...]
    reason: str = ""


@dataclass(frozen=True)
class RtcpUnknown:
    packet_type: int
    count: int
    body: bytes = field(default=b"")


RtcpPacket = Union[SenderReport, ReceiverReport, SourceDescription, Bye, RtcpUnknown]


def _header(count: int, ptype: int, body: bytes) -> bytes:
    if len(body) % 4:
        raise ValueError("RTCP body must be 32-bit aligned")
    if count > 31:
        raise ValueError("RTCP count field is 5 bits")
    return struct.pack("!BBH", 0x80 | count, ptype, len(body) // 4) + body


def _serialize_one(p: RtcpPacket) -> bytes:
    if isinstance(p, SenderReport):
        body = struct.pack("!IQIII", p.ssrc, p.ntp_timestamp, p.rtp_timestamp,
                           p.packet_count & 0xFFFFFFFF, p.octet_count & 0xFFFFFFFF)
        return _header(len(p.reports), RTCP_SR, body + b"".join(r.pack() for r in p.reports))
    if isinstance(p, ReceiverReport):
        body = _U32.pack(p.ssrc) + b"".join(r.pack() for r in p.reports)
        return _header(len(p.reports), RTCP_RR, body)
    if isinstance(p, SourceDescription):
        out = []
        for chunk in p.chunks:
            c = bytearray(_U32.pack(chunk.ssrc))
            for kind, value in chunk.items:
                if not 1 <= kind <= 255 or len(value) > 255:
                    raise ValueError("SDES item type 1..255, value up to 255 octets")
                c += bytes([kind, len(value)]) + value
            c += b"\x00"  # end of items, then pad to 32 bits
            c += bytes(-len(c) % 4)
            out.append(bytes(c))
        return _header(len(p.chunks), RTCP_SDES, b"".join(out))
    if isinstance(p, Bye):
        body = b"".join(_U32.pack(s) for s in p.ssrcs)
        if p.reason:
            reason = p.reason.encode("utf-8")[:255]
            r = bytes([len(reason)]) + reason
            body += r + bytes(-len(r) % 4)
        return _header(len(p.ssrcs), RTCP_BYE, body)
    if isinstance(p, RtcpUnknown):
        return _header(p.count, p.packet_type, p.body)
    raise TypeError(f"not an RTCP packet: {p!r}")


def build_compound(packets: list[RtcpPacket] | tuple[RtcpPacket, ...]) -> bytes:
    """Serialize RTCP packets into one compound datagram (caller orders them: SR/RR first)."""
    return b"".join(_serialize_one(p) for p in packets)


def _parse_sdes(body: bytes, count: int) -> SourceDescription:
    chunks = []
    pos = 0
    for _ in range(count):
        if pos + 4 > len(body):
            raise RtpError("SDES chunk truncated")
        ssrc = _U32.unpack_from(body, pos)[0]
        pos += 4
        items = []
        while True:
            if pos >= len(body):
                raise RtpError("SDES items not terminated")
            kind = body[pos]
            if kind == 0:
                pos += 1
                pos += -pos % 4  # chunks are 32-bit aligned
                break
            if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                raise RtpError("SDES item truncated")
            length = body[pos + 1]
            items.append((kind, bytes(body[pos + 2:pos + 2 + length])))
            pos += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))


def _parse_one(ptype: int, count: int, body: bytes) -> RtcpPacket:
    if ptype == RTCP_SR:
        if len(body) < 24 + 24 * count:
            raise RtpError("SR truncated")
        ssrc, ntp, rtp_ts, pc, oc = struct.unpack_from("!IQIII", body)
        blocks = tuple(ReportBlock.unpack(body, 24 + 24 * i) for i in range(count))
        return SenderReport(ssrc, ntp, rtp_ts, pc, oc, blocks)
    if ptype == RTCP_RR:
        if len(body) < 4 + 24 * count:
            raise RtpError("RR truncated")
        ssrc = _U32.unpack_from(body)[0]
        return ReceiverReport(ssrc, tuple(ReportBlock.unpack(body, 4 + 24 * i) for i in range(count)))
    if ptype == RTCP_SDES:
        return _parse_sdes(body, count)
    if ptype == RTCP_BYE:
        if len(body) < 4 * count:
            raise RtpError("BYE truncated")
        ssrcs = struct.unpack_from(f"!{count}I", body)
        reason = ""
        pos = 4 * count
        if pos < len(body):
            n = body[pos]
            if pos + 1 + n > len(body):
                raise RtpError("BYE reason truncated")
            reason = body[pos + 1:pos + 1 + n].decode("utf-8", "replace")
        return Bye(tuple(ssrcs), reason)
    return RtcpUnknown(ptype, count, bytes(body))


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Parse a (compound) RTCP datagram; raises ``RtpError`` on anything malformed."""
    packets: list[RtcpPacket] = []
    pos = 0
    if len(data) < 4:
        raise RtpError("RTCP packet too short")
    while pos < len(data):
        if len(data) - pos < 4:
            raise RtpError("RTCP header truncated")
        b0, ptype, words = struct.unpack_from("!BBH", data, pos)
        if b0 >> 6 != RTP_VERSION:
            raise RtpError(f"RTCP version {b0 >> 6}, expected 2")
        if not 192 <= ptype <= 223:
            raise RtpError(f"RTCP packet type {ptype} out of range")
        end = pos + 4 + 4 * words
        if end > len(data):
            raise RtpError("RTCP length exceeds datagram")
        body = data[pos + 4:end]
        if b0 & 0x20:  # padding, only legal on the last packet
            if end != len(data) or not body or body[-1] == 0 or body[-1] > len(body):
                raise RtpError("RTCP padding is invalid")
            body = body[:-body[-1]]
        packets.append(_parse_one(ptype, b0 & 0x1F, bytes(body)))
        pos = end
    return packets
