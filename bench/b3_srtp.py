"""B3S: B3 (bench/b3_bridge.py) with SRTP on both legs, against plain B3 in the same run.

SIPp 3.6 (Debian's) has no SRTP, so both SIPp ends are made to carry it without knowing:

- **The caller** offers ``RTP/SAVP`` with one fixed SDES key (``CALLER_KEY``,
  AES_CM_128_HMAC_SHA1_80) and plays ``relay-srtp.pcap``: B3's ``relay.pcap`` (every payload
  unique) protected here, at bench time, under that key by libsrtp (``SrtpContext``).
- **The far end** (``scenarios/uas_srtp_echo.xml``, SIPp with ``-rtp_echo``) copies the key
  the server offered for AES_CM_128_HMAC_SHA1_80 out of the INVITE (``<ereg>``) and answers
  with that same key, so the packets it echoes are encrypted under the key the server's
  inbound context for that leg expects (a separate libsrtp session from the one that sent
  them, with its own replay window, so an echo is not a replay).
- **The server** runs with ``media_encryption: required`` and ``allow_insecure_srtp_keys:
  true`` (SDES keys over plain UDP: the documented override, logged on every use; a bench
  on loopback only).

Matching by payload needs the plain payloads: dumpcap records whole packets here (SIP
included, so the keys are read from the captured SDP: the server never logs them) and
every captured packet is decrypted with libsrtp: caller -> server with ``CALLER_KEY``,
server -> caller with the key of the server's answer, server -> uas and its echo with the
key of the server's offer.  The decrypted packets go through B3's own analysis
(``b3_common.relay_figures``, ``rtp_probe``).  Rounds alternate plain and SRTP B3 levels at the
same number of pairs; the headline is the server's CPU per relayed packet, SRTP minus plain.
"""
from __future__ import annotations

import base64
import re
import shutil
import statistics
import struct
import subprocess
import time
from pathlib import Path

import numpy as np

from ivr.rtp.srtp import SrtpContext

from . import b3_bridge, common, rtp_probe
from .b3_common import (ScenarioUas, calls_broken, caller_xml, finish, level_head,
                        measured_calls, per_packet, relay_figures)

TARGETS = {"added_cpu_us_per_relayed_packet": "-", "undecryptable_packets": "0"}
SUITE = "AES_CM_128_HMAC_SHA1_80"
CALLER_KEY = bytes(range(1, 31))  # master key (16) + salt (14): a fixed bench key, never a real one
_CRYPTO = re.compile(rb"a=crypto:(\d+) " + SUITE.encode() + rb" inline:([A-Za-z0-9+/=]+)")
_MEDIA = re.compile(rb"m=audio (\d+) RTP/SAVP")
_RTCP_TYPES = range(200, 205)


# --------------------------------------------------------------------------- the caller

def write_srtp_pcap(plain: Path, path: Path, key: bytes = CALLER_KEY) -> Path:
    """``plain`` (rtp_probe.write_relay_pcap's stream) with every RTP packet protected under
    ``key``: the same headers and, inside, the same unique payloads."""
    data = plain.read_bytes()
    ctx = SrtpContext(SUITE, key, key)
    out, off = bytearray(data[:24]), 24
    while off + 16 <= len(data):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", data, off)
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        rtp = ctx.protect(frame[14 + 20 + 8:])
        udp = struct.pack("!HHHH", *struct.unpack_from("!HH", frame, 34), 8 + len(rtp), 0) + rtp
        ip = bytearray(frame[14:34])
        ip[2:4], ip[10:12] = struct.pack("!H", 20 + len(udp)), b"\0\0"
        ip[10:12] = struct.pack("!H", rtp_probe._ip_checksum(bytes(ip)))
        new = frame[:14] + bytes(ip) + udp
        out += struct.pack("<IIII", sec, usec, len(new), len(new)) + new
    path.write_bytes(bytes(out))
    return path


def scenario(work: Path, seconds: float) -> Path:
    """``uac_relay.xml`` offering RTP/SAVP with ``CALLER_KEY`` and playing the SRTP pcap."""
    plain = rtp_probe.write_relay_pcap(work / "relay.pcap", seconds)
    pcap = write_srtp_pcap(plain, work / "relay-srtp.pcap")
    inline = base64.b64encode(CALLER_KEY).decode()
    xml = caller_xml("uac_relay.xml", pcap)
    offer = "m=audio [media_port] RTP/AVP 0 101"
    if offer not in xml:
        raise common.BenchError("uac_relay.xml's m= line changed: update b3_srtp.scenario")
    xml = xml.replace(offer, f"m=audio [media_port] RTP/SAVP 0 101\n      a=crypto:1 {SUITE} inline:{inline}")
    path = work / "uac_relay_srtp.xml"
    path.write_text(xml)
    return path


# --------------------------------------------------------------------------- the server and the far end

def server_config(work: Path) -> Path:
    """The bench's config with SRTP required on every leg and SDES keys allowed over UDP."""
    out = work / "config"
    out.mkdir(parents=True, exist_ok=True)
    text = (common.BENCH / "config" / "extensions.yaml").read_text()
    text += ("\n# B3S (bench/b3_srtp.py): SRTP on both legs; SDES keys over plain UDP on loopback\n"
             "media_encryption: required\nallow_insecure_srtp_keys: true\n")
    (out / "extensions.yaml").write_text(text)
    return out


def start_server(work: Path, *, uas_port: int, rtp_ports: int, timeout: float = 90.0) -> common.Server:
    """``common.start_server`` with ``server_config``."""
    return common.start_server(work, uas_port=uas_port, rtp_ports=rtp_ports, timeout=timeout,
                               config=server_config(work))


def srtp_echo_uas(work: Path, core: str, tag: str = "srtp-uas") -> ScenarioUas:
    """SIPp ``-rtp_echo`` answering with ``uas_srtp_echo.xml`` (the server's own key)."""
    return ScenarioUas(work, core, tag, "uas_srtp_echo.xml")


class WholeCapture(common.Capture):
    """dumpcap on loopback recording whole packets (SRTP needs all of it to authenticate)."""

    def __init__(self, path: Path, bpf: str) -> None:
        self.path = path
        binary = shutil.which("dumpcap") or common.require("tshark")
        cmd = common.pinned(common.DRIVER_CORE, [binary, "-i", "lo", "-f", bpf, "-w", str(path),
                                                 "-P", "-q", "-B", "256"])
        self.err_path = path.with_suffix(".log")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.err, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if path.exists() or self.proc.poll() is not None:
                break
            time.sleep(0.05)
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise common.BenchError(f"capture failed: {self.err_path.read_text()[-1000:]}")


# --------------------------------------------------------------------------- reading the capture

def udp_datagrams(path: Path):
    """(time, source port, destination port, UDP payload) of every IPv4/UDP packet of a
    classic pcap written by dumpcap -P (Ethernet or Linux cooked on ``lo``)."""
    data = Path(path).read_bytes()
    if len(data) < 24:
        return
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    scale = 1e-9 if data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
    link = rtp_probe._LINK_HEADER[struct.unpack_from(endian + "I", data, 20)[0] & 0xFFFF]
    rec = struct.Struct(endian + "IIII")
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, orig = rec.unpack_from(data, off)
        pkt, off = off + 16, off + 16 + incl
        ip = pkt + link
        if incl != orig or incl < link + 28 or data[ip] >> 4 != 4 or data[ip + 9] != 17:
            continue  # cut short, or not IPv4/UDP
        udp = ip + (data[ip] & 0x0F) * 4
        sport, dport, ulen = struct.unpack_from("!HHH", data, udp)
        yield sec + frac * scale, sport, dport, data[udp + 8:udp + ulen]


def sdp_keys(datagrams, lo: int, hi: int) -> tuple[dict[int, bytes], set[int]]:
    """From the captured SDP: server RTP port -> the key it sends with (its answer to the
    caller, its offer to the uas; that offer's AES_CM_128_HMAC_SHA1_80 line is the one the
    uas answers with), and the caller's media ports (the SDP offering ``CALLER_KEY``)."""
    keys: dict[int, bytes] = {}
    callers: set[int] = set()
    for _t, _sport, _dport, payload in datagrams:
        if payload[:1] == b"\x80" or b"RTP/SAVP" not in payload:
            continue
        media, crypto = _MEDIA.search(payload), _CRYPTO.search(payload)
        if not (media and crypto):
            continue
        port, key = int(media.group(1)), base64.b64decode(crypto.group(2))
        if lo <= port <= hi:
            keys[port] = key
        elif key == CALLER_KEY:
            callers.add(port)
    return keys, callers


def decrypt_capture(path: Path, lo: int, hi: int, uas_media_port: int) -> tuple[rtp_probe.Packets, dict]:
    """Every RTP packet of the capture decrypted (rtp_probe.Packets, ``key`` = the plain
    payload's first 8 bytes), and counts: decrypted, undecryptable, without a key (a server
    port talking to a peer whose SDP was not captured), foreign packets skipped (ports of the
    range the server did not use), and the first 8 bytes of every wire payload of ours (to
    check none is a plain one)."""
    datagrams = list(udp_datagrams(path))
    keys, callers = sdp_keys(datagrams, lo, hi)
    peers = callers | {uas_media_port}
    contexts: dict[tuple, SrtpContext] = {}
    rows, failed, no_key, foreign = [], 0, 0, 0
    wire_keys: set[int] = set()  # what the wire carried where the payload begins
    for t, sport, dport, payload in datagrams:
        if len(payload) < 12 or payload[0] >> 6 != 2 or payload[1] in _RTCP_TYPES:
            continue
        if sport not in keys and dport not in keys:
            # not one of our server's ports: another process's traffic in the range the
            # capture filters on (the box is shared), skipped
            foreign += 1 if (lo <= sport <= hi or lo <= dport <= hi) else 0
            continue
        if not (dport in peers if sport in keys else sport in peers):
            no_key += 1  # our server with a peer whose SDP was not captured
            continue
        if sport in keys:           # from the server: its own key for that port
            stream, key = ("out", sport), keys[sport]
        else:                       # to the server: the caller's key, or the echo of its own
            key = keys[dport] if sport == uas_media_port else CALLER_KEY
            stream = ("in", dport)
        ctx = contexts.get(stream)
        if ctx is None:
            ctx = contexts[stream] = SrtpContext(SUITE, key, key)
        wire_keys.add(struct.unpack_from("!Q", payload, 12)[0] if len(payload) >= 20 else 0)
        plain = ctx.unprotect(payload)
        if plain is None or len(plain) < 20:
            failed += 1
            continue
        b1, seq, ts, ssrc = struct.unpack_from("!xBHII", plain)
        rows.append((t, sport, dport, b1 & 0x7F, seq, ts, ssrc,
                     struct.unpack_from("!Q", plain, 12)[0], len(plain)))
    counts = {"srtp_ports_keyed": len(keys), "decrypted": len(rows), "undecryptable": failed,
              "without_key": no_key, "foreign_packets_skipped": foreign}
    if not rows:
        return rtp_probe._empty(), {**counts, "wire": wire_keys}
    cols = list(zip(*rows))
    ints = [np.array(c, dtype=np.int64) for c in cols[1:7]]
    return (rtp_probe.Packets(np.array(cols[0]), *ints, np.array(cols[7], dtype=np.uint64),
                              np.array(cols[8], dtype=np.int64)), {**counts, "wire": wire_keys})


# --------------------------------------------------------------------------- one level

def run_level(work: Path, pairs: int, duration_s: float) -> dict:
    """B3's ``run_level`` with SRTP on both legs (the same load, window and analysis)."""
    work = work / f"b3s-{pairs}"
    work.mkdir(parents=True, exist_ok=True)
    xml = scenario(work, duration_s + 5)
    uas = srtp_echo_uas(work, common.DRIVER_CORE)
    server = start_server(work / "server", uas_port=uas.port, rtp_ports=pairs * 8 + 400)
    try:
        lo, hi = server.rtp_range
        cap = WholeCapture(work / "both.pcap", f"udp portrange {lo}-{hi} or udp port "
                                                f"{server.sip_port} or udp port {uas.port}")
        win = measured_calls(work, server.sip, xml, service="bridge", calls=pairs,
                             duration_s=duration_s, pids=[server.pid])
        cap_info = cap.stop()
    finally:
        server.stop()
        uas.stop()
    insecure_logged = server.count("allowed by allow_insecure_srtp_keys")
    whole, counts = decrypt_capture(work / "both.pcap", lo, hi, uas.media_port)
    plain_keys = set(rtp_probe.read_pcap(work / "relay.pcap").key.tolist())
    wire = counts.pop("wire")
    figures = relay_figures(whole, uas.media_port, lo, hi, win.w0, win.w1)
    cpu_fig = win.cpu[0]
    level = {**level_head(pairs, duration_s, win), "srtp": SUITE,
             "server_cpu": cpu_fig, **cap_info, **counts,
             "plain_payloads_on_the_wire": len(wire & plain_keys),
             "insecure_key_uses_logged": insecure_logged, **figures,
             "cpu_us_per_relayed_packet": per_packet(cpu_fig["cpu_s"],
                                                     figures["relayed_packets_in_window"])}
    broken = calls_broken(level)
    if counts["undecryptable"] or counts["without_key"]:
        broken.append("undecryptable packets")
    if level["plain_payloads_on_the_wire"]:
        broken.append("plain payloads on the wire")
    if not level["round_trip_through_both_relays"].get("matched"):
        broken.append("no relayed packet came back")
    return finish(level, broken, win.run)


# --------------------------------------------------------------------------- the benchmark

KEPT_UP = 0.9  # a round counts when each level relayed this share of its packets in the window


def kept_up(level: dict) -> float | None:
    """The share of the window's packets the server relayed (matched by payload on the other
    leg): on a starved server CPU per "relayed" packet means nothing (B3 divides by the
    packets that came in)."""
    relayed = level.get("relayed_packets_in_window") or 0
    return round(level["per_relay"]["both"].get("matched", 0) / relayed, 3) if relayed else None


def measure(work: Path, pairs: int, duration_s: float, rounds: int) -> dict:
    """Plain B3 and SRTP B3 levels, alternating; medians of the rounds in which both levels
    kept up (``KEPT_UP``), None when none did."""
    plain_levels, srtp_levels, counted = [], [], []
    for i in range(rounds):
        plain_levels.append(b3_bridge.run_level(work / f"round{i}", pairs, duration_s))
        srtp_levels.append(run_level(work / f"round{i}", pairs, duration_s))
        for name, lv in (("plain", plain_levels[-1]), ("srtp", srtp_levels[-1])):
            rel = lv["per_relay"]["both"]
            lv["kept_up"] = kept_up(lv)
            print(f"  B3S round {i + 1} {name:5s} {pairs} pairs: {lv['cpu_us_per_relayed_packet']} us/packet, "
                  f"cpu {lv['server_cpu']['cpu_percent']}%, per relay p50/p99 {rel.get('p50_ms')}/"
                  f"{rel.get('p99_ms')} ms, relayed {lv['kept_up']} of the window's packets", flush=True)
        if all((lv["kept_up"] or 0) >= KEPT_UP for lv in (plain_levels[-1], srtp_levels[-1])):
            counted.append(i)
    med = lambda levels, key: _median([levels[i].get(key) for i in counted])  # noqa: E731
    plain_us, srtp_us = med(plain_levels, "cpu_us_per_relayed_packet"), med(srtp_levels, "cpu_us_per_relayed_packet")
    rel = lambda levels, leg, q: _median([levels[i]["per_relay"][leg].get(q) for i in counted])  # noqa: E731
    return {
        "pairs": pairs, "duration_s": duration_s, "rounds": rounds, "suite": SUITE,
        "rounds_counted": len(counted),
        "cpu_us_per_relayed_packet_plain": plain_us, "cpu_us_per_relayed_packet_srtp": srtp_us,
        "added_cpu_us_per_relayed_packet": round(srtp_us - plain_us, 2)
        if plain_us is not None and srtp_us is not None else None,
        "per_relay_p50_ms_srtp": rel(srtp_levels, "both", "p50_ms"),
        "per_relay_p99_ms_srtp": rel(srtp_levels, "both", "p99_ms"),
        "per_relay_p99_ms_plain": rel(plain_levels, "both", "p99_ms"),
        "jitter_into_server_p99_ms_srtp": med(srtp_levels, "jitter_into_server_p99_ms"),
        "jitter_out_of_server_p99_ms_srtp": med(srtp_levels, "jitter_out_of_server_p99_ms"),
        "jitter_out_of_server_p99_ms_plain": med(plain_levels, "jitter_out_of_server_p99_ms"),
        "failed_calls_srtp": sum(lv["failed"] + max(0, pairs - lv["successful"] - lv["failed"])
                                 for lv in srtp_levels),
        "undecryptable_packets": sum(lv["undecryptable"] + lv["without_key"] for lv in srtp_levels),
        "plain_payloads_on_the_wire": sum(lv["plain_payloads_on_the_wire"] for lv in srtp_levels),
        "levels_plain": plain_levels, "levels_srtp": srtp_levels}


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def run(work: Path, mode: str, context: dict) -> dict:
    quick = mode == "quick"
    pairs = context.get("b3s_pairs") or (10 if quick else 100)
    duration = context.get("seconds") or (6.0 if quick else 30.0)
    figures = measure(work / "b3s", pairs, duration, rounds=1 if quick else 3)
    print(f"  B3S {pairs} pairs: {figures['cpu_us_per_relayed_packet_plain']} us per relayed packet plain, "
          f"{figures['cpu_us_per_relayed_packet_srtp']} with SRTP (+{figures['added_cpu_us_per_relayed_packet']}); "
          f"per relay p99 {figures['per_relay_p99_ms_srtp']} ms; undecryptable "
          f"{figures['undecryptable_packets']}, plain payloads on the wire "
          f"{figures['plain_payloads_on_the_wire']}", flush=True)
    return {"targets": TARGETS, "figures": figures}
