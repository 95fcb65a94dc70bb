"""Bridged media through a real rtpengine (``media_relay: {engine: rtpengine}``): a SIPp
caller dials ``ivr serve``, whose plan bridges it to a SIPp uas with ``-rtp_echo``; the
server anchors both legs at rtpengine-daemon (userspace forwarding) and re-INVITEs each SIPp
(both scenarios require that re-INVITE) to ports in rtpengine's range.  rtpengine counts
the audio it forwarded and the BYE deletes rtpengine's call.  (No packet capture yet: that
the server's own RTP ports go quiet is shown by the unit test's ``inactive`` sessions.)"""
from __future__ import annotations

import random
import re
import shutil
import socket
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
    proc = subprocess.Popen([binary, "--foreground", "--interface=127.0.0.1",
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
    uas = caller = None
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
        server = server_factory(dialplans=plans, config=config)
        server.wait_for_log("bridged media through rtpengine")
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
    finally:
        for proc in (caller, uas, rtpe):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def _errors(tmp_path: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("*errors.log"))
