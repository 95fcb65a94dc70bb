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
        assert level["cpu_us_per_relayed_packet"] > 0 and level["kept_up"] > 0  # edges: may pass 1
    assert figures["rounds_counted"] in (0, 1)


def test_a_round_counts_only_when_both_levels_relayed_their_packets():
    level = {"relayed_packets_in_window": 1000, "per_relay": {"both": {"matched": 950}}}
    assert b3_srtp.kept_up(level) == 0.95
    assert b3_srtp.kept_up({**level, "per_relay": {"both": {"matched": 40}}}) == 0.04
    assert b3_srtp.kept_up({"relayed_packets_in_window": 0, "per_relay": {"both": {}}}) is None


def _pcap(path, datagrams):
    """A classic pcap of IPv4/UDP datagrams on 127.0.0.1: (time, sport, dport, payload)."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for t, sport, dport, payload in datagrams:
        udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        frame = bytes(12) + b"\x08\x00" + ip + udp
        out += struct.pack("<IIII", int(t), int((t % 1) * 1e6), len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))
    return path


def test_capture_decrypted_with_keys_from_the_sdp_and_other_processes_traffic_skipped(tmp_path):
    """The capture filters on the server's port range, which another process on the box may
    also use: its packets are skipped and counted, not taken for undecryptable ones."""
    import base64
    lo, hi, server_port, caller_port, uas_port = 40000, 40100, 40010, 26000, 27000
    server_key = bytes(range(100, 130))
    inline = lambda key: base64.b64encode(key).decode()  # noqa: E731
    invite = (f"INVITE sip:bridge@127.0.0.1 SIP/2.0\r\n\r\nm=audio {caller_port} RTP/SAVP 0\r\n"
              f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{inline(b3_srtp.CALLER_KEY)}\r\n").encode()
    answer = (f"SIP/2.0 200 OK\r\n\r\nm=audio {server_port} RTP/SAVP 0\r\n"
              f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{inline(server_key)}\r\n").encode()
    caller = SrtpContext(b3_srtp.SUITE, b3_srtp.CALLER_KEY, bytes(30))
    server = SrtpContext(b3_srtp.SUITE, server_key, bytes(30))
    plain_in, plain_out = struct.pack("!BBHII", 0x80, 0, 1, 160, 7) + bytes(range(160)), \
        struct.pack("!BBHII", 0x80, 0, 1, 160, 9) + bytes(range(1, 161))
    packets = [(0.0, 5060, 5070, invite), (0.1, 5070, 5060, answer),
               (1.0, caller_port, server_port, caller.protect(plain_in)),
               (1.01, server_port, caller_port, server.protect(plain_out)),
               (1.02, 29000, 40050, plain_in),  # someone else's plain RTP in our range
               (1.03, server_port, caller_port, b"\x80" + bytes(40))]  # ours, damaged
    path = _pcap(tmp_path / "both.pcap", packets)
    decrypted, counts = b3_srtp.decrypt_capture(path, lo, hi, uas_port)
    wire = counts.pop("wire")
    assert counts == {"srtp_ports_keyed": 1, "decrypted": 2, "undecryptable": 1, "without_key": 0,
                      "foreign_packets_skipped": 1}
    assert decrypted.key.tolist() == [struct.unpack("!Q", p[12:20])[0] for p in (plain_in, plain_out)]
    assert decrypted.ssrc.tolist() == [7, 9] and decrypted.sport.tolist() == [caller_port, server_port]
    assert struct.unpack("!Q", plain_in[12:20])[0] not in wire
