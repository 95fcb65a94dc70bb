"""B8 (WebRTC echo calls against plain RTP echo calls) as a functional check: a tiny run of
``bench/run.py --only B8`` against the real server.  Every call must succeed in both modes
(SIP over WebSocket, ICE, DTLS-SRTP, the echo checked byte for byte); the CPU figures are
only checked to be there, not their values."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import webrtc_load  # noqa: E402
from bench.webrtc_sip import offer_sdp, read_answer  # noqa: E402

KEYS = ["server_cpu_ms_per_call_second_webrtc", "server_cpu_ms_per_call_second_plain",
        "cpu_ratio_webrtc_to_plain", "setup_ms_webrtc", "setup_ms_plain",
        "setup_server_cpu_ms_per_call_webrtc", "packet_loss_percent_webrtc",
        "packet_loss_percent_plain", "cpu_per_packet_ratio_webrtc_to_plain", "failed_calls_webrtc", "failed_calls_plain",
        "mismatched_packets", "phases"]


def test_tiny_b8_run_every_call_succeeds(tmp_path):
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--only", "B10",
                           "--b8-calls", "3", "--b8-seconds", "2", "--results", str(results),
                           "--work", str(tmp_path / "work")],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    data = json.loads((results / "b8_webrtc.json").read_text())
    figures = data["figures"]
    assert data["mode"] == "quick" and data["machine"]["commit"]
    missing = [k for k in KEYS if k not in figures]
    assert not missing, missing
    assert figures["failed_calls_webrtc"] == 0 and figures["failed_calls_plain"] == 0, figures
    assert figures["mismatched_packets"] == 0
    assert [p["mode"] for p in figures["phases"]] == ["plain", "webrtc"]
    for phase in figures["phases"]:
        assert phase["calls_up"] == 3 and phase["errors"] == [], phase
        assert phase["packets_echoed"] > 0 and phase["undecryptable_packets"] == 0
    webrtc = figures["phases"][1]
    assert webrtc["invite_to_dtls_ms"]["n"] == 3  # ICE and the DTLS handshake really ran
    assert figures["server_cpu_ms_per_call_second_webrtc"] > 0
    assert "| B10 | WebRTC echo: failed calls | 0 |" in proc.stdout


def test_payload_counter_round_trips_in_g711_safe_codes():
    for n in (0, 1, 4095, 0x12345678, 2**32 - 1):
        prefix = webrtc_load._prefix(n, 77)
        assert webrtc_load._counter(prefix + b"\x01" * 10) == n
        assert 0x7F not in prefix and 0xFF not in prefix
    assert webrtc_load._counter(b"\xff" * 160) is None  # silence is not an echo
    assert 0x7F not in webrtc_load.SAFE and 0xFF not in webrtc_load.SAFE


def test_offers_and_answer_reading():
    webrtc = offer_sdp("webrtc", 4000, ufrag="abcd", pwd="p" * 24, fingerprint="sha-256 AA:BB")
    assert "UDP/TLS/RTP/SAVPF" in webrtc and "a=setup:actpass" in webrtc and "a=rtcp-mux" in webrtc
    assert "RTP/AVP 0 101" in offer_sdp("plain", 4000)
    answer = read_answer(b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 5000 UDP/TLS/RTP/SAVPF 0 101\r\n"
                         b"a=ice-ufrag:srv1\r\na=ice-pwd:xyz\r\na=fingerprint:sha-256 AA\r\n"
                         b"a=setup:passive\r\n")
    assert (answer.ip, answer.port, answer.payload_type) == ("127.0.0.1", 5000, 0)
    assert (answer.ufrag, answer.pwd, answer.setup) == ("srv1", "xyz", "passive")
