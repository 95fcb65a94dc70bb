"""The RTP that actually went over the wire: pcap reading and per-stream timing analysis.

Why a capture and not a receiver of ours: at 1000 streams x 50 packets/s a Python receiver
would itself be the bottleneck (and its timestamps would be its own scheduling, not the
server's sending), while dumpcap (tshark's capture engine, in C, kernel timestamps, a 256 MB
ring) keeps up on the other core and records what the kernel saw leave the server's socket.
The pcap is read afterwards in one pass with ``struct`` into numpy arrays; every figure here
is computed from those arrays.

Also writes ``relay.pcap``: the 20 ms PCMU stream SIPp plays into B3's bridged calls, every
packet with a distinct random payload so a packet can be recognised after the round trip.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 8000
PTIME = 0.020
_LINK_HEADER = {1: 14, 0: 4, 113: 16, 276: 20, 101: 0}  # EN10MB, NULL, LINUX_SLL, SLL2, RAW
_RTCP_PTS = range(72, 77)  # second byte 200..204 with the marker bit read as RTP


@dataclass
class Packets:
    """One row per captured RTP packet (RTCP and non-RTP are left out)."""
    t: np.ndarray       # capture time, seconds (float64)
    sport: np.ndarray
    dport: np.ndarray
    pt: np.ndarray
    seq: np.ndarray
    ts: np.ndarray      # RTP timestamp (uint32 as int64)
    ssrc: np.ndarray
    key: np.ndarray     # the first 8 payload bytes as an integer (to match relayed packets)
    plen: np.ndarray

    def __len__(self) -> int:
        return len(self.t)

    def where(self, mask: np.ndarray) -> "Packets":
        return Packets(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def read_pcap(path: Path) -> Packets:
    data = Path(path).read_bytes()
    if len(data) < 24:
        return _empty()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a pcap file (pcapng? write with dumpcap -P)")
    nanos = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0xFFFF
    link = _LINK_HEADER.get(linktype)
    if link is None:
        raise ValueError(f"{path}: link type {linktype} not supported")
    fast = _read_fixed(data, endian, link, nanos)
    if fast is not None:
        return fast
    rec = struct.Struct(endian + "IIII")
    rows = []
    append = rows.append
    off, end = 24, len(data)
    unpack_rec = rec.unpack_from
    rtp = struct.Struct("!HHHHBBHII").unpack_from  # UDP header + RTP fixed header
    key8 = struct.Struct("!Q").unpack_from
    scale = 1e-9 if nanos else 1e-6
    while off + 16 <= end:
        sec, frac, incl, _orig = unpack_rec(data, off)
        off += 16
        pkt = off
        off += incl
        ip = pkt + link
        if incl < link + 20 + 8 + 12 or data[ip] >> 4 != 4 or data[ip + 9] != 17:
            continue
        udp = ip + (data[ip] & 0x0F) * 4
        if udp + 20 > pkt + incl:
            continue
        sport, dport, ulen, _ck, b0, b1, seq, ts, ssrc = rtp(data, udp)
        if b0 >> 6 != 2 or (b1 & 0x7F) in _RTCP_PTS:
            continue
        payload = udp + 20 + (b0 & 0x0F) * 4
        key = key8(data, payload)[0] if payload + 8 <= pkt + incl else 0
        append((sec + frac * scale, sport, dport, b1 & 0x7F, seq, ts, ssrc, key, ulen - 20))
    if not rows:
        return _empty()
    cols = list(zip(*rows))
    return Packets(np.array(cols[0], dtype=np.float64), np.array(cols[1], dtype=np.int64),
                   np.array(cols[2], dtype=np.int64), np.array(cols[3], dtype=np.int64),
                   np.array(cols[4], dtype=np.int64), np.array(cols[5], dtype=np.int64),
                   np.array(cols[6], dtype=np.int64), np.array(cols[7], dtype=np.uint64),
                   np.array(cols[8], dtype=np.int64))


def _read_fixed(data: bytes, endian: str, link: int, nanos: bool) -> Packets | None:
    """Vectorised path: every record cut at the same snap length (dumpcap -s 64 on RTP)."""
    if len(data) < 24 + 16:
        return None
    incl = struct.unpack_from(endian + "I", data, 24 + 8)[0]
    stride = 16 + incl
    if (len(data) - 24) % stride or incl < link + 20 + 8 + 12 + 8:
        return None
    rec = np.frombuffer(data, dtype=np.uint8, offset=24).reshape(-1, stride)
    u32 = np.dtype(endian + "u4")
    head = rec[:, :16].copy().view(u32).reshape(-1, 4).astype(np.int64)
    if not (head[:, 2] == incl).all():
        return None
    ip = 16 + link
    ihl = (rec[:, ip] & 0x0F).astype(np.int64) * 4
    if not ((rec[:, ip] >> 4 == 4) & (rec[:, ip + 9] == 17) & (ihl == 20)).all():
        return None
    udp = ip + 20

    def be(col: int, n: int) -> np.ndarray:
        out = np.zeros(len(rec), dtype=np.int64)
        for i in range(n):
            out = (out << 8) | rec[:, col + i]
        return out

    b0, b1 = rec[:, udp + 8], rec[:, udp + 9]
    ok = (b0 >> 6 == 2) & ~np.isin(b1 & 0x7F, list(_RTCP_PTS))
    payload = udp + 20  # (CSRC lists do not occur here; checked below)
    ok &= (b0 & 0x0F) == 0
    key = np.zeros(len(rec), dtype=np.uint64)
    for i in range(8):
        key = (key << np.uint64(8)) | rec[:, payload + i].astype(np.uint64)
    t = head[:, 0] + head[:, 1] * (1e-9 if nanos else 1e-6)
    p = Packets(t, be(udp, 2), be(udp + 2, 2), (b1 & 0x7F).astype(np.int64), be(udp + 10, 2),
                be(udp + 12, 4), be(udp + 16, 4), key, be(udp + 4, 2) - 20)
    return p.where(ok)


def _empty() -> Packets:
    z = np.zeros(0, dtype=np.int64)
    return Packets(np.zeros(0), z, z, z, z, z, z, np.zeros(0, dtype=np.uint64), z)


def streams(p: Packets, by: str = "sport") -> list[Packets]:
    """Split into streams by (source port, SSRC), or by (destination port, SSRC) for streams
    that all come from one port with one SSRC (SIPp's pcap play), each in capture order."""
    if not len(p):
        return []
    key = (getattr(p, by) << 32) | p.ssrc
    order = np.lexsort((p.t, key))
    sorted_key = key[order]
    cuts = np.flatnonzero(np.diff(sorted_key)) + 1
    return [p.where(idx) for idx in np.split(order, cuts)]


def rfc3550_jitter(t: np.ndarray, ts: np.ndarray) -> tuple[float, float]:
    """The interarrival jitter estimate J of RFC 3550 6.4.1 (J += (|D| - J) / 16), in ms:
    its mean over the stream (what the receiver's reports carry, on average) and its peak."""
    if len(t) < 2:
        return 0.0, 0.0
    transit = t * RATE - _unwrap(ts)
    j, total, peak = 0.0, 0.0, 0.0
    for d in np.abs(np.diff(transit)).tolist():
        j += (d - j) / 16.0
        total += j
        peak = j if j > peak else peak
    scale = 1000.0 / RATE
    return total / (len(t) - 1) * scale, peak * scale


def _unwrap(ts: np.ndarray) -> np.ndarray:
    steps = np.diff(ts) % (1 << 32)
    steps = np.where(steps >= (1 << 31), steps - (1 << 32), steps)
    return np.concatenate([[0], np.cumsum(steps)]).astype(np.float64)


def analyse(p: Packets, *, min_packets: int = 10, by: str = "sport") -> dict:
    """Timing of a set of streams: send interval deviation from 20 ms, gaps, sequence errors,
    RFC 3550 jitter (audio packets only: telephone-event packets repeat timestamps), drift of
    the RTP clock against the capture (wall) clock."""
    per = [s for s in streams(p, by) if len(s) >= min_packets]
    if not per:
        return {"streams": 0, "packets": int(len(p))}
    intervals, jitters, peaks, drifts, durations = [], [], [], [], []
    seq_gap_streams = missing = reordered = 0
    for s in per:
        intervals.append(np.diff(s.t))
        dseq = np.diff(s.seq) % 65536
        bad = dseq != 1
        if bad.any():
            seq_gap_streams += 1
            forward = dseq[bad & (dseq < 32768)]
            missing += int((forward - 1).clip(min=0).sum())
            reordered += int((bad & (dseq >= 32768)).sum())
        audio = s.pt < 96
        if audio.sum() >= 2:
            mean_j, peak_j = rfc3550_jitter(s.t[audio], s.ts[audio])
            jitters.append(mean_j)
            peaks.append(peak_j)
            rtp_clock = (_unwrap(s.ts[audio])[-1]) / RATE
            wall = s.t[audio][-1] - s.t[audio][0]
            drifts.append((rtp_clock - wall) * 1000.0)
            durations.append(wall)
    iv = np.concatenate(intervals) * 1000.0
    dev = np.abs(iv - PTIME * 1000.0)
    j, dr = np.array(jitters or [0.0]), np.array(drifts or [0.0])
    return {
        "streams": len(per), "packets": int(sum(len(s) for s in per)),
        "interval_ms": {"mean": _r(iv.mean()), "p50": _r(np.percentile(iv, 50)),
                        "p99": _r(np.percentile(iv, 99)), "p999": _r(np.percentile(iv, 99.9)),
                        "max": _r(iv.max()), "min": _r(iv.min())},
        "interval_dev_ms": {"p50": _r(np.percentile(dev, 50)), "p99": _r(np.percentile(dev, 99)),
                            "p999": _r(np.percentile(dev, 99.9)), "max": _r(dev.max())},
        "max_gap_ms": _r(iv.max()),
        "gaps_over_40ms": int((iv > 40.0).sum()),
        "streams_with_seq_errors": seq_gap_streams, "seq_missing": missing, "seq_backwards": reordered,
        "jitter_ms": {"p50": _r(np.percentile(j, 50)), "p99": _r(np.percentile(j, 99)),
                      "max": _r(max(peaks or [0.0])), "of": "per-stream mean J; max: peak J"},
        "drift_ms": {"mean": _r(dr.mean()), "max_abs": _r(np.abs(dr).max()),
                     "stream_seconds_mean": _r(np.mean(durations or [0.0]))},
    }


def relay_latency(into: Packets, out: Packets, max_s: float = 1.0) -> dict:
    """Packets that came back: for each packet of ``out`` whose payload key was seen in ``into``
    on the same server port (into.dport == out.sport) earlier, the delay in ms."""
    first: dict[tuple[int, int], float] = {}
    for t, port, k in zip(into.t.tolist(), into.dport.tolist(), into.key.tolist()):
        first.setdefault((port, k), t)
    delays = []
    for t, port, k in zip(out.t.tolist(), out.sport.tolist(), out.key.tolist()):
        t0 = first.get((port, k))
        if t0 is not None and 0 <= t - t0 <= max_s:
            delays.append(t - t0)
    d = np.array(delays) * 1000.0
    if not d.size:
        return {"matched": 0}
    return {"matched": int(d.size), "p50_ms": _r(np.percentile(d, 50)), "p99_ms": _r(np.percentile(d, 99)),
            "max_ms": _r(d.max())}


def _r(x) -> float:
    return round(float(x), 3)


def write_relay_pcap(path: Path, seconds: float, seed: int = 7) -> Path:
    """A 20 ms PCMU stream for SIPp's play_pcap_audio: Ethernet/IPv4/UDP/RTP, random u-law
    payloads (never 0x7F, the one code G.711 does not round-trip), 20 ms apart."""
    rng = np.random.default_rng(seed)
    n = int(seconds / PTIME)
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i in range(n):
        payload = rng.integers(0, 256, 160, dtype=np.uint8)
        payload[payload == 0x7F] = 0x7E
        rtp = struct.pack("!BBHII", 0x80, 0x80 if i == 0 else 0, i & 0xFFFF, i * 160, 0x1234ABCD)
        udp_payload = rtp + payload.tobytes()
        udp = struct.pack("!HHHH", 6000, 6002, 8 + len(udp_payload), 0) + udp_payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        ip = ip[:10] + struct.pack("!H", _ip_checksum(ip)) + ip[12:]
        frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
        t = i * PTIME
        out += struct.pack("<IIII", int(t), int(round((t % 1) * 1e6)), len(frame), len(frame)) + frame
    Path(path).write_bytes(bytes(out))
    return Path(path)


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
