"""A tiny pcap reader for test fixtures: pcap global header + records, Ethernet/IPv4/UDP only."""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

SIPP_DIR = "/usr/share/sip-tester"
LOCAL_DIR = os.path.join(os.path.dirname(__file__), "data")


@dataclass(frozen=True)
class UdpRecord:
    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


def fixture_path(name: str) -> str:
    """The SIPp-installed pcap when sip-tester is installed, else the byte-identical copy here."""
    installed = os.path.join(SIPP_DIR, name)
    return installed if os.path.exists(installed) else os.path.join(LOCAL_DIR, name)


def read_udp(path: str) -> list[UdpRecord]:
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        endian, scale = "<", 1e-6
    elif magic == b"\xa1\xb2\xc3\xd4":
        endian, scale = ">", 1e-6
    elif magic == b"\x4d\x3c\xb2\xa1":
        endian, scale = "<", 1e-9
    else:
        raise ValueError(f"{path}: not a pcap file")
    _vmaj, _vmin, _tz, _sig, _snap, linktype = struct.unpack_from(endian + "HHiIII", data, 4)
    if linktype != 1:
        raise ValueError(f"{path}: linktype {linktype}, only Ethernet supported")
    out = []
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(endian + "IIII", data, pos)
        frame = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        ethertype = struct.unpack_from("!H", frame, 12)[0]
        if ethertype != 0x0800:
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from("!H", ip, 2)[0]
        if ip[9] != 17:
            continue
        src_ip = ".".join(str(b) for b in ip[12:16])
        dst_ip = ".".join(str(b) for b in ip[16:20])
        udp = ip[ihl:total]
        sport, dport, ulen = struct.unpack_from("!HHH", udp)
        out.append(UdpRecord(sec + frac * scale, (src_ip, sport), (dst_ip, dport), bytes(udp[8:ulen])))
    return out
