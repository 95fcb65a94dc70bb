"""RtpSession on task.Clock with in-memory ports: exact sequence numbers, timestamps, payloads."""
import random

import numpy as np
import pytest
from twisted.internet import defer, task

from ivr.media import g711
from ivr.media.player import PcmSource, SilenceSource
from ivr.rtp.clock import MediaClock
from ivr.rtp.dtmf import DtmfReceiver, decode_event, encode_event
from ivr.rtp.packet import (Bye, ReceiverReport, ReportBlock, RtpPacket, SenderReport,
                            SourceDescription, build_compound, parse_rtcp)
from ivr.rtp.session import DtmfNotNegotiated, PlaybackStopped, RtpSession, SessionClosed

from .fakes import FakePorts
from .pcaputil import fixture_path, read_udp

PEER = ("127.0.0.1", 50000)


def make(te=101, **kw):
    clock = task.Clock()
    ports = FakePorts()
    s = RtpSession(clock, MediaClock(clock), ports=ports, rng=random.Random(7), **kw)
    s.set_remote(PEER[0], PEER[1], payload_type=0, codec="PCMU", telephone_event_pt=te)
    return s, clock, ports


def sent(ports, since=0):
    return [RtpPacket.parse(d) for d, _ in ports.pair.rtp.sent[since:]]


def ticks(clock, n, step=0.02):
    # a hair past each boundary, so float rounding never leaves a tick unfired
    for _ in range(n):
        clock.advance(step + 1e-9)


def rtp_in(s, pkt, addr=PEER):
    s._pair.rtp.protocol.datagramReceived(pkt.serialize(), addr)


def test_silence_stream_exact_seq_and_ts():
    s, clock, ports = make()
    ticks(clock, 10)
    pkts = sent(ports)
    assert len(pkts) == 10
    seq0, ts0 = pkts[0].sequence, pkts[0].timestamp
    assert [p.sequence for p in pkts] == [(seq0 + i) & 0xFFFF for i in range(10)]
    assert [p.timestamp for p in pkts] == [(ts0 + 160 * i) & 0xFFFFFFFF for i in range(10)]
    assert [p.marker for p in pkts] == [True] + [False] * 9
    assert all(p.payload == b"\xff" * 160 and p.payload_type == 0 and p.ssrc == s.ssrc for p in pkts)
    assert {a for _, a in ports.pair.rtp.sent} == {PEER}


def test_late_tick_advances_timestamp_without_seq_gap():
    s, clock, ports = make()
    ticks(clock, 2)
    ticks(clock, 1, step=0.06)  # count = 3
    ticks(clock, 1)
    pkts = sent(ports)
    assert len(pkts) == 4
    assert [p.sequence - pkts[0].sequence for p in pkts] == [0, 1, 2, 3]
    assert [(p.timestamp - pkts[0].timestamp) & 0xFFFFFFFF for p in pkts] == [0, 160, 640, 800]
    assert s.clock.late_ticks == 1


def test_alaw_silence_and_payload_type():
    clock = task.Clock()
    s = RtpSession(clock, MediaClock(clock), ports=FakePorts())
    s.set_remote("127.0.0.1", 50000, payload_type=8, codec="PCMA")
    ticks(clock, 1)
    p = RtpPacket.parse(s._pair.rtp.sent[0][0])
    assert p.payload_type == 8 and p.payload == b"\xd5" * 160


def test_play_encodes_frames_then_fires_and_continues_with_silence():
    s, clock, ports = make()
    tone = (8000 * np.sin(np.arange(480) * 2 * np.pi * 440 / 8000)).astype(np.int16)
    d = s.play(PcmSource(tone))
    done = []
    d.addCallback(done.append)
    ticks(clock, 5)
    pkts = sent(ports)
    assert b"".join(p.payload for p in pkts[:3]) == g711.ulaw_encode(tone).tobytes()
    assert done == [3]
    assert pkts[3].payload == pkts[4].payload == b"\xff" * 160
    assert [p.sequence - pkts[0].sequence for p in pkts] == list(range(5))


def test_gapless_chaining_from_callback():
    s, clock, ports = make()
    one = np.full(160, 1000, dtype=np.int16)
    two = np.full(160, -1000, dtype=np.int16)
    s.play(PcmSource(one)).addCallback(lambda _: s.play(PcmSource(two)))
    ticks(clock, 3)
    pl = [p.payload for p in sent(ports)]
    assert pl[0] == g711.ulaw_encode(one).tobytes()
    assert pl[1] == g711.ulaw_encode(two).tobytes()
    assert pl[2] == b"\xff" * 160


def test_prompt_end_runs_after_the_other_streams_of_the_firing_sent_theirs():
    """The dialplan work a prompt's end triggers (here: the callback) runs once every other
    stream of the firing has sent its packet, and the stream's own packet of that period
    still comes from the next prompt (gapless, sequence contiguous)."""
    clock = task.Clock()
    media = MediaClock(clock)
    first_ports, other_ports = FakePorts(), FakePorts()
    first = RtpSession(clock, media, ports=first_ports, rng=random.Random(1))
    other = RtpSession(clock, media, ports=other_ports, rng=random.Random(2))
    first.set_remote(PEER[0], PEER[1])  # registered first: ticked first in each firing
    other.set_remote(PEER[0], PEER[1] + 2)
    one = np.full(160, 1000, dtype=np.int16)
    two = np.full(160, -1000, dtype=np.int16)
    seen = []

    def ended(frames):
        seen.append((frames, len(other_ports.pair.rtp.sent), len(first_ports.pair.rtp.sent)))
        first.play(PcmSource(two))
    first.play(PcmSource(one)).addCallback(ended)
    ticks(clock, 3)
    # The prompt ended on the second tick: by then the other stream had sent that tick's
    # packet (2 sent), and the first stream's had not gone out yet (1 sent).
    assert seen == [(1, 2, 1)]
    pkts = sent(first_ports)
    assert [p.payload for p in pkts] == [g711.ulaw_encode(one).tobytes(),
                                         g711.ulaw_encode(two).tobytes(), b"\xff" * 160]
    assert [p.sequence - pkts[0].sequence for p in pkts] == [0, 1, 2]
    assert [p.timestamp - pkts[0].timestamp for p in pkts] == [0, 160, 320]


def test_a_failing_prompt_end_callback_still_sends_the_period_packet():
    s, clock, ports = make()
    d = s.play(PcmSource(np.full(160, 1000, dtype=np.int16)))
    d.addCallback(lambda _: 1 / 0)
    errors = []
    d.addErrback(lambda f: errors.append(f.type))
    ticks(clock, 3)
    assert errors == [ZeroDivisionError]
    assert len(sent(ports)) == 3  # the end's period went out as silence, and the next


def test_stop_and_cancel_playback():
    s, clock, ports = make()
    d = s.play(SilenceSource(10))
    failures = []
    d.addErrback(lambda f: failures.append(f.type))
    ticks(clock, 2)
    assert s.playing and s.stop_playback()
    assert failures == [PlaybackStopped] and not s.playing and not s.stop_playback()
    d2 = s.play(SilenceSource(10))
    d2.addErrback(lambda f: failures.append(f.type))
    d3 = s.play(PcmSource(np.full(1600, 500, dtype=np.int16)))  # replaces d2
    d3.addErrback(lambda f: failures.append(f.type))
    ticks(clock, 1)
    d3.cancel()
    ticks(clock, 1)
    assert failures == [PlaybackStopped, PlaybackStopped, defer.CancelledError]
    assert sent(ports)[-1].payload == b"\xff" * 160


def test_send_dtmf_packets_and_resume_audio():
    s, clock, ports = make()
    ticks(clock, 2)
    mark = len(ports.pair.rtp.sent)
    d = s.send_dtmf("1#", duration_ms=100)
    fired = []
    d.addCallback(fired.append)
    ticks(clock, 7 + 3 + 7 + 2)  # digit, 60 ms gap, digit, audio
    pkts = sent(ports, mark)
    assert [p.payload_type for p in pkts] == [101] * 7 + [0] * 3 + [101] * 7 + [0] * 2
    first, second = pkts[:7], pkts[10:17]
    assert len({p.timestamp for p in first}) == 1 and len({p.timestamp for p in second}) == 1
    base = pkts[0].timestamp
    assert second[0].timestamp == (base + 160 * 10) & 0xFFFFFFFF
    assert pkts[-1].timestamp == (base + 160 * 18) & 0xFFFFFFFF
    assert [p.marker for p in first] == [True] + [False] * 6
    assert [decode_event(p.payload).duration for p in first] == [160, 320, 480, 640, 800, 800, 800]
    seqs = [p.sequence for p in pkts]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
    rx = DtmfReceiver()
    got = [g.digit for p in pkts if p.payload_type == 101 for g in rx.feed(p.timestamp, p.sequence, p.payload, 0)]
    assert got == ["1", "#"] and fired == [None]
    assert s.stats()["dtmf_sent"] == 2


def test_dtmf_needs_negotiation_and_valid_digits():
    s, clock, _ = make(te=None)
    failures = []
    s.send_dtmf("1").addErrback(lambda f: failures.append(f.type))
    assert failures == [DtmfNotNegotiated]
    s2, _, _ = make()
    with pytest.raises(ValueError):
        s2.send_dtmf("1x")


def test_hold_and_direction():
    s, clock, ports = make()
    ticks(clock, 2)
    s.hold()
    ticks(clock, 5)
    assert len(ports.pair.rtp.sent) == 2
    s.unhold()
    ticks(clock, 1)
    s.set_direction("recvonly")
    ticks(clock, 3)
    s.set_direction("sendonly")
    ticks(clock, 1)
    pkts = sent(ports)
    assert len(pkts) == 4
    assert [p.sequence - pkts[0].sequence for p in pkts] == [0, 1, 2, 3]
    assert [(p.timestamp - pkts[0].timestamp) & 0xFFFFFFFF for p in pkts] == [0, 160, 1120, 1760]
    assert [p.marker for p in pkts] == [True, False, True, True]
    with pytest.raises(ValueError):
        s.set_direction("sideways")


def test_receive_audio_latch_and_stats():
    s, clock, ports = make()
    frames = []
    s.add_audio_listener(frames.append)
    codes = g711.ulaw_encode(np.arange(-800, 800, 10, dtype=np.int16))
    newaddr = ("127.0.0.1", 50222)
    for i in range(3):
        rtp_in(s, RtpPacket(0, 100 + i, 1000 + 160 * i, 0xABC, codes.tobytes()), newaddr)
        ticks(clock, 1)
    rtp_in(s, RtpPacket(0, 101, 1160, 0xABC, codes.tobytes()), newaddr)  # duplicate: dropped
    # (seq 103 is lost)
    rtp_in(s, RtpPacket(8, 104, 1640, 0xABC, b"\xd5" * 160), newaddr)  # PCMA also decoded
    assert len(frames) == 4 and np.array_equal(frames[0], g711.ulaw_decode(codes))
    assert frames[3].tolist() == [8] * 160
    assert s.remote_address == newaddr
    ticks(clock, 1)
    assert ports.pair.rtp.sent[-1][1] == newaddr
    st = s.stats()
    assert st["packets_received"] == 5 and st["duplicates"] == 1 and st["lost"] == 1
    assert st["relatches"] == 1 and st["remote_ssrc"] == 0xABC


def test_garbage_and_unexpected_payload_types_are_counted_not_fatal():
    s, clock, ports = make()
    proto = s._pair.rtp.protocol
    proto.datagramReceived(b"\x00garbage", PEER)
    proto.datagramReceived(b"", PEER)
    rtp_in(s, RtpPacket(96, 1, 1, 1, b"xx"), ("10.0.0.1", 9))
    s._pair.rtcp.protocol.datagramReceived(b"\x80\xc9\x00\x09", PEER)
    st = s.stats()
    assert st["bad_packets"] == 2 and st["unexpected_payload_type"] == 1 and st["bad_rtcp"] == 1
    assert s.remote_address == PEER  # no latch onto a non-negotiated payload type


def test_receive_rfc4733_from_sipp_pcap():
    s, clock, ports = make()
    digits = []
    s.on_dtmf(lambda d, source: digits.append((d, source)))
    for name, want in (("dtmf_2833_star.pcap", "*"), ("dtmf_2833_7.pcap", "7")):
        for r in read_udp(fixture_path(name)):
            s._pair.rtp.protocol.datagramReceived(r.payload, PEER)
            ticks(clock, 1)
        assert digits[-1] == (want, "rfc4733")
    assert len(digits) == 2


def test_rfc4733_lost_end_emitted_by_tick_timeout():
    s, clock, ports = make(dtmf_end_timeout=0.3)
    digits = []
    s.on_dtmf(lambda d, source: digits.append(d))
    for i in range(3):
        rtp_in(s, RtpPacket(101, i, 5000, 9, encode_event("4", False, 10, 160 * (i + 1))))
    ticks(clock, 14)                     # 0.28 s: not yet
    assert digits == []
    ticks(clock, 6)                      # checked every 5th tick: by 0.4 s it is out
    assert digits == ["4"]


def test_media_timeout_fires_once_and_resets():
    s, clock, ports = make(media_timeout=2.0)
    fired = []
    s.on_timeout(lambda: fired.append(clock.seconds()))
    ticks(clock, 99)
    assert fired == []
    ticks(clock, 6)                      # checked every 5th tick: 100 ms resolution
    ticks(clock, 100)
    assert len(fired) == 1 and 2.0 <= fired[0] <= 2.1
    rtp_in(s, RtpPacket(0, 1, 1, 5, b"\xff" * 160))
    ticks(clock, 106)
    assert len(fired) == 2
    s.set_direction("sendonly")  # not expecting media: no timeout
    rtp_in(s, RtpPacket(0, 2, 161, 5, b"\xff" * 160))
    ticks(clock, 300)
    assert len(fired) == 2


def test_media_timeout_off():
    s, clock, ports = make(media_timeout=0)
    fired = []
    s.on_timeout(lambda: fired.append(1))
    ticks(clock, 3000)
    assert fired == []


def test_rtcp_sr_with_report_block_and_bye_on_close():
    s, clock, ports = make(rtcp_interval=5.0)
    rtcp_port = ports.pair.rtcp
    for i in range(10):
        if i != 4:
            rtp_in(s, RtpPacket(0, 300 + i, 160 * i, 0x5555, b"\xff" * 160))
        ticks(clock, 1)
    ticks(clock, 400)  # 8 s: at least one report (interval is 2.5..7.5 s)
    assert rtcp_port.sent and rtcp_port.sent[0][1] == (PEER[0], PEER[1] + 1)
    first = parse_rtcp(rtcp_port.sent[0][0])
    sr, sdes = first
    assert isinstance(sr, SenderReport) and sr.ssrc == s.ssrc and sr.packet_count > 0
    assert sr.reports[0].ssrc == 0x5555 and sr.reports[0].cumulative_lost == 1
    assert sr.reports[0].highest_seq == 309
    assert isinstance(sdes, SourceDescription) and sdes.chunks[0].cname == s.cname
    # the peer's RR about us is kept as the peer's view
    rr = ReceiverReport(0x5555, (ReportBlock(s.ssrc, 64, 3, 1000, 80, 0, 0),))
    s._pair.rtcp.protocol.datagramReceived(build_compound([rr]), ("127.0.0.1", 50999))
    peer = s.stats()["peer"]
    assert peer["fraction_lost"] == 0.25 and peer["cumulative_lost"] == 3 and peer["jitter_ms"] == 10.0
    d = s.close()
    assert isinstance(parse_rtcp(rtcp_port.sent[-1][0])[-1], Bye)
    assert rtcp_port.sent[-1][1] == ("127.0.0.1", 50999)  # latched RTCP address
    assert ports.released == [40000] and d.called
    n = len(ports.pair.rtp.sent)
    ticks(clock, 10)
    assert len(ports.pair.rtp.sent) == n and not s.clock.running


def test_close_fails_pending_operations():
    s, clock, ports = make()
    failures = []
    s.play(SilenceSource(5)).addErrback(lambda f: failures.append(f.type))
    s.send_dtmf("123").addErrback(lambda f: failures.append(f.type))
    ticks(clock, 2)
    s.close()
    assert failures == [PlaybackStopped, SessionClosed]
    s.play(SilenceSource(1)).addErrback(lambda f: failures.append(f.type))
    assert failures[-1] == SessionClosed


def test_plain_and_full_header_forms_deliver_the_same_audio():
    # The receive path parses the plain header (no CSRC, extension or padding) in place and
    # everything else with RtpPacket.parse: both must hand on the same payload and stats.
    s, clock, ports = make()
    frames, payloads = [], []
    s.add_audio_listener(frames.append)
    s.add_payload_listener(lambda f: payloads.append(f.payload))
    body = g711.ulaw_encode(np.arange(-800, 800, 10, dtype=np.int16)).tobytes()
    rtp_in(s, RtpPacket(0, 10, 1000, 0x1234, body))
    rtp_in(s, RtpPacket(0, 11, 1160, 0x1234, body, marker=True, csrc=(7, 8),
                        extension_profile=0xBEDE, extension_data=b"\x10\xaa\x00\x00", padding=4))
    rtp_in(s, RtpPacket(0, 12, 1320, 0x1234, body, padding=1))
    assert payloads == [body, body, body]
    assert all(np.array_equal(f, g711.ulaw_decode(np.frombuffer(body, np.uint8))) for f in frames)
    st = s.stats()
    assert st["packets_received"] == 3 and st["lost"] == 0 and st["remote_ssrc"] == 0x1234
    assert st["bad_packets"] == 0


def test_rtcp_on_the_rtp_port_is_not_taken_for_rtp():
    # An RR with no report blocks starts 0x80 0xC9: the plain-header fast path must not take it.
    s, clock, ports = make()
    rr = build_compound([ReceiverReport(0x55, ()), SourceDescription.cname(0x55, "x@y")])
    assert rr[0] == 0x80
    s._pair.rtp.protocol.datagramReceived(rr, PEER)
    st = s.stats()
    assert st["rtcp_received"] == 1 and st["packets_received"] == 0 and st["bad_packets"] == 0
