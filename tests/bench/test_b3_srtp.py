"""bench/b3_srtp.py (B3S, B3 with SRTP on both legs): the caller's pre-encrypted pcap, and a
tiny run against the real server and SIPp (keys and correctness only, not the figures):
every call up, every captured RTP packet decrypted with the keys from the captured SDP,
none of the caller's plain payloads on the wire, relayed packets matched by payload."""
from __future__ import annotations

import struct

from bench import b3_srtp, rtp_probe
from ivr.rtp.srtp import SrtpContext

KEYS = ["rounds_counted", "cpu_us_per_relayed_packet_plain", "cpu_us_per_relayed_packet_srtp",
        "added_cpu_us_per_relayed_packet", "per_relay_p50_ms_srtp", "per_relay_p99_ms_srtp",
        "jitter_into_server_p99_ms_srtp", "jitter_out_of_server_p99_ms_srtp",
        "failed_calls_srtp", "undecryptable_packets", "plain_payloads_on_the_wire",
        "levels_plain", "levels_srtp"]


def test_caller_pcap_is_the_relay_stream_protected_under_the_caller_key(tmp_path):
    plain = rtp_probe.write_relay_pcap(tmp_path / "relay.pcap", 1.0)
    srtp = b3_srtp.write_srtp_pcap(plain, tmp_path / "relay-srtp.pcap")
    clear = [d[3] for d in b3_srtp.udp_datagrams(plain)]
    wire = list(b3_srtp.udp_datagrams(srtp))
    assert len(wire) == len(clear) == 50
    rx = SrtpContext(b3_srtp.SUITE, bytes(30), b3_srtp.CALLER_KEY)
    for (_t, sport, dport, payload), original in zip(wire, clear):
        assert (sport, dport) == (6000, 6002) and len(payload) == len(original) + 10  # the 80-bit tag
        assert payload[:12] == original[:12] and payload[12:] != original[12:]
        assert rx.unprotect(payload) == original
    # the IPv4 header still adds up (SIPp sends what the pcap holds)
    data = srtp.read_bytes()
    ip = data[24 + 16 + 14:24 + 16 + 34]
    assert rtp_probe._ip_checksum(ip[:10] + b"\0\0" + ip[12:]) == struct.unpack("!H", ip[10:12])[0]


def test_tiny_b3s_run_decrypts_every_packet_and_matches_relays(tmp_path):
    out = b3_srtp.run(tmp_path, "quick", {"seconds": 4.0, "b3s_pairs": 2})
    figures = out["figures"]
    missing = [k for k in KEYS if k not in figures]
    assert not missing, missing
    assert figures["failed_calls_srtp"] == 0 and figures["undecryptable_packets"] == 0
    assert figures["plain_payloads_on_the_wire"] == 0
    srtp = figures["levels_srtp"][0]
    assert srtp["successful"] == 2 and srtp["srtp_ports_keyed"] == 4  # two legs per call
    assert srtp["decrypted"] > 0 and srtp["insecure_key_uses_logged"] > 0
    assert srtp["per_relay"]["caller_to_uas"]["matched"] > 0
    assert srtp["per_relay"]["uas_to_caller"]["matched"] > 0
    for level in (srtp, figures["levels_plain"][0]):  # the medians are None if the box starved us
        assert level["cpu_us_per_relayed_packet"] > 0 and 0 < level["kept_up"] <= 1
    assert figures["rounds_counted"] in (0, 1)


def test_a_round_counts_only_when_both_levels_relayed_their_packets():
    level = {"relayed_packets_in_window": 1000, "per_relay": {"both": {"matched": 950}}}
    assert b3_srtp.kept_up(level) == 0.95
    assert b3_srtp.kept_up({**level, "per_relay": {"both": {"matched": 40}}}) == 0.04
    assert b3_srtp.kept_up({"relayed_packets_in_window": 0, "per_relay": {"both": {}}}) is None
