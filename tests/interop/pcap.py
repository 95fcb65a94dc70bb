"""Write RTP pcap files for SIPp's ``play_pcap_audio``: Ethernet/IPv4/UDP/RTP, one packet
per 20 ms.  SIPp rewrites the addresses and ports and paces the packets by the capture
timestamps, so only the RTP header and payload (and the timing) matter."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ivr.media.g711 import ulaw_encode
from ivr.media.inband_dtmf import synthesize_dtmf

RATE = 8000
FRAME = 160                      # samples per 20 ms packet
EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11,
               "A": 12, "B": 13, "C": 14, "D": 15}


@dataclass(frozen=True)
class RtpPacket:
    at: float                    # seconds from the start of the capture
    payload_type: int
    seq: int
    timestamp: int
    payload: bytes
    marker: bool = False
    ssrc: int = 0x1D2C3B4A


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(packet: RtpPacket, src_port: int = 6000, dst_port: int = 6002) -> bytes:
    rtp = struct.pack("!BBHII", 0x80, (0x80 if packet.marker else 0) | packet.payload_type,
                      packet.seq & 0xFFFF, packet.timestamp & 0xFFFFFFFF, packet.ssrc)
    rtp += packet.payload
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(rtp), 0) + rtp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), packet.seq & 0xFFFF, 0, 64, 17,
                     0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    eth = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + udp


def write_pcap(path: Path, packets: list[RtpPacket], epoch: int = 1_700_000_000) -> Path:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]   # LINKTYPE_ETHERNET
    for p in sorted(packets, key=lambda p: (p.at, p.seq)):
        frame = _frame(p)
        usec = int(round(p.at * 1_000_000))
        out.append(struct.pack("<IIII", epoch + usec // 1_000_000, usec % 1_000_000,
                               len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))
    return path


def dtmf_audio(sequence: list[tuple[str | None, float]], level_dbm0: float = -10.0) -> np.ndarray:
    """int16 samples: ``(digit, ms)`` segments, ``None`` for silence."""
    parts = []
    for digit, ms in sequence:
        n = int(round(ms * RATE / 1000))
        parts.append(np.zeros(n) if digit is None else synthesize_dtmf(digit, ms, level_dbm0)[:n])
    samples = np.concatenate(parts)
    samples = samples[:len(samples) - len(samples) % FRAME]
    return np.clip(np.round(samples), -32768, 32767).astype(np.int16)


def pcmu_packets(samples: np.ndarray, start_seq: int = 1000, start_ts: int = 8000
                 ) -> list[RtpPacket]:
    """PT 0 packets, 20 ms apart, timestamps +160."""
    codes = ulaw_encode(samples)
    return [RtpPacket(at=i * 0.02, payload_type=0, seq=start_seq + i,
                      timestamp=start_ts + i * FRAME, payload=codes[i * FRAME:(i + 1) * FRAME].tobytes(),
                      marker=(i == 0))
            for i in range(len(codes) // FRAME)]


def rfc4733_packets(digit: str, start: float, ms: float, timestamp: int, pt: int = 101,
                    volume: int = 10) -> list[RtpPacket]:
    """An RFC 4733 event every 20 ms for ``ms``, then the end packet three times (same
    timestamp, growing duration).  ``seq`` is left 0: renumber with :func:`renumber`."""
    code, out = EVENT_CODES[digit], []
    steps = max(1, int(round(ms / 20)))
    for i in range(steps):
        duration = (i + 1) * FRAME
        end = i == steps - 1
        payload = struct.pack("!BBH", code, (0x80 if end else 0) | volume, duration)
        for repeat in range(3 if end else 1):
            out.append(RtpPacket(at=start + i * 0.02 + repeat * 0.001, payload_type=pt, seq=0,
                                 timestamp=timestamp, payload=payload, marker=(i == 0)))
    return out


def renumber(packets: list[RtpPacket], start_seq: int = 1000) -> list[RtpPacket]:
    """Sort by time and give the packets consecutive sequence numbers (one RTP stream)."""
    ordered = sorted(packets, key=lambda p: (p.at, p.payload_type))
    return [RtpPacket(p.at, p.payload_type, start_seq + i, p.timestamp, p.payload, p.marker, p.ssrc)
            for i, p in enumerate(ordered)]
