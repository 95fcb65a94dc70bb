"""Bridged media through a real rtpengine (``media_relay: {engine: rtpengine}``): a SIPp
caller dials ``ivr serve``, whose plan bridges it to a SIPp uas with ``-rtp_echo``; the
server anchors both legs at rtpengine-daemon (userspace forwarding) and re-INVITEs each SIPp
(both scenarios require that re-INVITE) to ports in rtpengine's range.  rtpengine counts
the audio it forwarded and the BYE deletes rtpengine's call.  A tshark capture of the SIP
port, the server's RTP range and rtpengine's shows the wire: once both re-INVITEs are
acknowledged, the audio goes to and comes from rtpengine's two ports, and not one packet
goes to or leaves the server's RTP ports of that call (the ones in its own SDPs) until the
BYE."""
from __future__ import annotations

import random
import re
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

import numpy as np

from ivr.rtp.bencode import decode, encode

from .conftest import free_port, require
from .pcap import pcmu_packets, write_pcap

SCENARIOS = Path(__file__).parent / "scenarios"


def ng(port: int, command: str, **params) -> dict:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2.0)
        cookie = f"t{random.randrange(10**9)}".encode()
        s.sendto(cookie + b" " + encode({"command": command, **params}), ("127.0.0.1", port))
        data, _ = s.recvfrom(65535)
    assert data.startswith(cookie + b" ")
    return decode(data[len(cookie) + 1:])


def start_rtpengine(tmp_path: Path):
    binary = require("rtpengine")
    ng_port = free_port()
    low = random.randrange(20000, 29000, 2)
    log = open(tmp_path / "rtpengine.log", "wb")
    # --config-file=none: Debian's /etc/rtpengine/rtpengine.conf would add fixed ports
    # (HTTP 2225, cli 2224) that a second rtpengine on the machine already holds
    proc = subprocess.Popen([binary, "--config-file=none", "--foreground", "--interface=127.0.0.1",
                             f"--listen-ng=127.0.0.1:{ng_port}", f"--port-min={low}",
                             f"--port-max={low + 99}", "--log-stderr", "--table=-1",
                             f"--listen-cli=127.0.0.1:{free_port()}",
                             f"--pidfile={tmp_path / 'rtpengine.pid'}"],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if ng(ng_port, "ping").get(b"result") == b"pong":
                return proc, ng_port, (low, low + 99)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("rtpengine did not answer ping:\n"
                         + (tmp_path / "rtpengine.log").read_text(errors="replace")[-2000:])


def test_bridge_media_goes_through_rtpengine(tmp_path, server_factory):
    sipp = require("sipp")
    rtpe, ng_port, rtpe_ports = start_rtpengine(tmp_path)
    uas = caller = tshark = None
    try:
        config = tmp_path / "config"
        shutil.copytree(Path(__file__).resolve().parents[2] / "config", config)
        with open(config / "extensions.yaml", "a") as f:
            f.write(f"\nmedia_relay: {{engine: rtpengine, ng: 127.0.0.1:{ng_port}}}\n")
        uas_port, uas_media = free_port(), random.randrange(10000, 19000, 2)
        plans = tmp_path / "plans"
        plans.mkdir()
        (plans / "bridge.yaml").write_text(
            "routes:\n  - name: bridge\n    flow: bridge\n"
            f"flows:\n  bridge:\n    - dial: {{to: \"sip:echo@127.0.0.1:{uas_port}\", timeout: 10}}\n")
        # below Linux's ephemeral ports (32768-60999): no other process's socket lands in
        # the range, so every packet the capture finds there is the server's
        server_rtp = random.randrange(29200, 32300, 2)
        server_rtp = (server_rtp, server_rtp + 400)
        server = server_factory(dialplans=plans, config=config,
                                extra=["--rtp-ports", f"{server_rtp[0]}-{server_rtp[1]}"])
        server.wait_for_log("bridged media through rtpengine")
        capture = tmp_path / "legs.pcap"
        tshark = start_capture(capture, f"udp port {server.sip_port} or udp portrange "
                               f"{server_rtp[0]}-{server_rtp[1] + 1} or udp portrange "
                               f"{rtpe_ports[0]}-{rtpe_ports[1]}")
        uas = subprocess.Popen([sipp, "-sf", str(SCENARIOS / "uas_reinvited.xml"),
                                "-i", "127.0.0.1", "-p", str(uas_port), "-mi", "127.0.0.1",
                                "-mp", str(uas_media), "-rtp_echo", "-m", "1", "-nostdin",
                                "-trace_err", "-timeout", "60"],
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        tone = (3000 * np.sin(2 * np.pi * 440 * np.arange(8000 * 8) / 8000)).astype(np.int16)
        pcap = write_pcap(tmp_path / "tone.pcap", pcmu_packets(tone))
        xml = (SCENARIOS / "uac_reinvited.xml").read_text().replace("AUDIO_PCAP", str(pcap))
        (tmp_path / "uac.xml").write_text(xml)
        caller_media = random.randrange(10000, 19000, 2)
        caller = subprocess.Popen([sipp, server.sip, "-sf", str(tmp_path / "uac.xml"),
                                   "-s", "bridge", "-i", "127.0.0.1", "-p", str(free_port()),
                                   "-mi", "127.0.0.1", "-mp", str(caller_media), "-m", "1",
                                   "-d", "4000", "-nostdin", "-trace_err", "-timeout", "60"],
                                  cwd=tmp_path, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.STDOUT)
        log = server.wait_for_log("media_relay engine='rtpengine'", timeout=20)
        time.sleep(2.5)  # audio flows through rtpengine for a while
        calls = ng(ng_port, "list").get(b"calls", [])
        assert len(calls) == 1, calls
        query = ng(ng_port, "query", **{"call-id": calls[0]})
        forwarded = query[b"totals"][b"RTP"][b"packets"]
        assert forwarded > 100, query  # the caller's audio and the uas's echo, both ways
        relay_ports = [int(p) for p in re.findall(
            r"media_relay engine='rtpengine' to='127\.0\.0\.1:(\d+)'", server.log())]
        assert len(relay_ports) == 2 and all(rtpe_ports[0] <= p <= rtpe_ports[1]
                                            for p in relay_ports), relay_ports
        assert caller.wait(30) == 0, _errors(tmp_path)
        assert uas.wait(30) == 0, _errors(tmp_path)
        deadline = time.monotonic() + 5
        while ng(ng_port, "list").get(b"calls") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ng(ng_port, "list").get(b"calls", []) == []  # the BYE deleted it
        assert "rtpengine not used" not in server.log()
        time.sleep(0.3)
        tshark.terminate()
        tshark.wait(10)
        wire = wire_after_reinvite(udp_datagrams(capture), server.sip_port, server_rtp)
        assert wire["server_ports"], wire  # its 200 to the caller and its INVITE to the uas
        assert wire["window_s"] > 2.0, wire
        assert wire["server_ports_packets"] == 0, wire  # none to or from ours for that call
        phones = set(wire["phone_ports"])  # the caller's and the uas's (from their SDPs)
        flows = {k: n for k, n in wire["flows"].items() if phones & set(k)}
        # each phone talks to rtpengine's port for it only, both ways (the loopback may carry
        # other tests' RTP in the same port ranges: only the phones' flows are looked at)
        assert flows and all(set(k) - phones <= set(relay_ports) for k in flows), wire
        to_rtpengine = {dport: n for (_, dport), n in flows.items() if dport in relay_ports}
        assert set(to_rtpengine) == set(relay_ports), wire  # caller -> A, echo -> B
        assert min(to_rtpengine.values()) > 50, wire
    finally:
        if tshark is not None and tshark.poll() is None:
            tshark.kill()
            tshark.wait()
        for proc in (caller, uas, rtpe):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def _errors(tmp_path: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("*errors.log"))


def start_capture(path: Path, bpf: str) -> subprocess.Popen:
    binary = require("tshark")
    proc = subprocess.Popen([binary, "-i", "lo", "-f", bpf, "-F", "pcap", "-w", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while not (path.exists() and path.stat().st_size >= 24):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    time.sleep(0.5)
    return proc


def udp_datagrams(path: Path) -> list[tuple[float, int, int, bytes]]:
    """(time, source port, destination port, payload) of every IPv4 UDP datagram in a
    classic pcap of ``lo`` (Ethernet or Linux cooked framing)."""
    data = path.read_bytes()
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    link = struct.unpack(endian + "I", data[20:24])[0]
    skip = {1: 14, 113: 16, 276: 20}[link]
    out, off = [], 24
    while off + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = frame[skip:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        udp = ip[(ip[0] & 15) * 4:]
        sport, dport, length = struct.unpack("!HHH", udp[:6])
        out.append((sec + usec / 1e6, sport, dport, udp[8:length]))
    return out


def wire_after_reinvite(datagrams, sip_port: int, server_rtp: tuple[int, int]) -> dict:
    """What the RTP did between the server's last ACK before the BYE (both re-INVITEs to
    rtpengine answered) and the BYE: packets per (source, destination) port, and how many went to or
    came from the server's RTP ports named in its own SDPs (its answer to the caller, its
    offer to the uas; the re-INVITEs name rtpengine's)."""
    server_ports, phone_ports, acks, bye = set(), set(), [], None
    for t, sport, dport, payload in datagrams:
        if sip_port not in (sport, dport):
            continue
        for port in re.findall(rb"\r\nm=audio (\d+) ", payload):
            port = int(port)
            if sport == sip_port and server_rtp[0] <= port <= server_rtp[1]:
                server_ports.add(port)
            elif dport == sip_port:
                phone_ports.add(port)
        if payload.startswith(b"BYE ") and bye is None:
            bye = t
        if payload.startswith(b"ACK ") and sport == sip_port and bye is None:
            acks.append(t)
    start = (acks[-1] if acks else float("inf")) + 0.1  # packets already on their way
    end = bye if bye is not None else float("-inf")
    flows: dict = {}
    ours = 0
    for t, sport, dport, payload in datagrams:
        if not start <= t <= end or sip_port in (sport, dport):
            continue
        flows[sport, dport] = flows.get((sport, dport), 0) + 1
        if sport in server_ports or dport in server_ports:
            ours += 1
    return {"server_ports": sorted(server_ports), "phone_ports": sorted(phone_ports),
            "window_s": round(end - start, 2), "flows": flows, "server_ports_packets": ours}
