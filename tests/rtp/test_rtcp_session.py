"""RTCP from an RtpSession on task.Clock: when reports go out (RFC 3550 6.2/6.3), SR or RR,
report block values for a known packet sequence, a=rtcp, rtcp-mux (RFC 5761) and BYE."""
import random

from twisted.internet import task

from ivr.rtp.clock import MediaClock
from ivr.rtp.packet import (Bye, ReceiverReport, ReportBlock, RtpPacket, SenderReport,
                            SourceDescription, build_compound, parse_rtcp)
from ivr.rtp.session import RtpSession

from .fakes import FakePorts

PEER = ("127.0.0.1", 50000)


def make(seed=7, **remote):
    clock = task.Clock()
    ports = FakePorts()
    s = RtpSession(clock, MediaClock(clock), ports=ports, rng=random.Random(seed),
                   rtcp_interval=5.0)
    s.set_remote(PEER[0], PEER[1], payload_type=0, codec="PCMU", **remote)
    return s, clock, ports


def ticks(clock, n):
    for _ in range(n):
        clock.advance(0.02 + 1e-9)


def run_and_time(s, clock, port, seconds):
    """Tick for ``seconds``; the time each RTCP datagram left on ``port``."""
    times, seen = [], len(port.sent)
    for _ in range(int(seconds / 0.02)):
        ticks(clock, 1)
        for data, _ in port.sent[seen:]:
            if 192 <= data[1] <= 223:
                times.append(clock.seconds())
        seen = len(port.sent)
    return times


def expected_gaps(seed, interval=5.0, n=20):
    """The gaps RtpSession's rng gives: ssrc, seq and timestamp are drawn first, then half
    an interval for the first report and a whole one for the rest, each x 0.5..1.5."""
    rng = random.Random(seed)
    rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32)
    return [(interval / 2 if i == 0 else interval) * rng.uniform(0.5, 1.5) for i in range(n)]


def test_reports_follow_the_rfc3550_schedule_to_the_housekeeping_tick():
    for seed in (1, 7, 42):
        s, clock, ports = make(seed)
        times = run_and_time(s, clock, ports.pair.rtcp, 40.0)
        gaps = expected_gaps(seed)
        # each report goes out on the first housekeeping tick (every 100 ms) at or after its
        # due time, and the next interval is counted from then
        sent_at = 0.0
        for got, gap in zip(times, gaps):
            assert sent_at + gap - 1e-6 <= got <= sent_at + gap + 0.1 + 1e-6, (times, gaps)
            sent_at = got
        assert sent_at + gaps[len(times)] > 40.0 - 0.1  # and no report is missing
        assert 1.25 <= times[0] <= 3.85 and len(times) >= 6
        assert all(2.5 <= b - a <= 7.6 for a, b in zip(times, times[1:]))


def test_sr_while_we_send_rr_while_on_hold_with_block_for_a_known_sequence():
    s, clock, ports = make()
    # the peer sends seq 1000..1049 but 1010, 1011 and 1030 are lost, 1020 arrives twice
    for seq in range(1000, 1050):
        if seq in (1010, 1011, 1030):
            continue
        for _ in range(2 if seq == 1020 else 1):
            s._pair.rtp.protocol.datagramReceived(
                RtpPacket(0, seq, 160 * (seq - 1000), 0xABCD, b"\xff" * 160).serialize(), PEER)
    ticks(clock, 200)  # 4 s: the first report (1.25..3.75 s) has gone out
    reports = [parse_rtcp(d) for d, _ in ports.pair.rtcp.sent]
    assert len(reports) == 1
    sr, sdes = reports[0]
    assert isinstance(sr, SenderReport) and sr.ssrc == s.ssrc
    # sent on a housekeeping tick before that tick's packet: its counts are those of the
    # packets before, its timestamp that of the packet about to go
    assert sr.octet_count == 160 * sr.packet_count and sr.packet_count > 50
    assert sr.rtp_timestamp == RtpPacket.parse(ports.pair.rtp.sent[sr.packet_count][0]).timestamp
    block = sr.reports[0]
    assert (block.ssrc, block.highest_seq) == (0xABCD, 1049)
    # expected 50, received 48 (47 + a duplicate): RFC 3550 A.3 counts the duplicate
    assert block.cumulative_lost == 2 and block.fraction_lost == (2 << 8) // 50
    assert isinstance(sdes, SourceDescription) and sdes.chunks[0].cname == s.cname
    s.hold()  # nothing sent from now on: the next reports are RRs
    ticks(clock, 500)
    later = [parse_rtcp(d)[0] for d, _ in ports.pair.rtcp.sent[1:]]
    assert later and isinstance(later[0], SenderReport)  # we sent RTP before the hold
    assert all(isinstance(p, ReceiverReport) for p in later[1:]) and len(later) >= 2
    assert later[-1].reports[0].fraction_lost == 0  # no new loss in the interval


def test_a_rtcp_port_and_address_from_the_sdp_are_used():
    s, clock, ports = make(rtcp_port=50123, rtcp_ip="127.0.0.9")
    ticks(clock, 200)
    assert ports.pair.rtcp.sent and {a for _, a in ports.pair.rtcp.sent} == {("127.0.0.9", 50123)}


def test_rtcp_mux_sends_and_receives_on_the_rtp_port():
    s, clock, ports = make(rtcp_mux=True)
    ticks(clock, 200)
    rtcp_out = [(d, a) for d, a in ports.pair.rtp.sent if 192 <= d[1] <= 223]
    assert ports.pair.rtcp.sent == [] and len(rtcp_out) == 1 and rtcp_out[0][1] == PEER
    assert isinstance(parse_rtcp(rtcp_out[0][0])[0], SenderReport)
    # demultiplexing by the second octet: RTP payload types 0 and 8, with and without the
    # marker bit, stay RTP; 200-204 (PT 72-76 with marker) are RTCP
    rtp = s._pair.rtp.protocol
    rtp.datagramReceived(RtpPacket(0, 1, 0, 0x77, b"\xff" * 160, marker=True).serialize(), PEER)
    rtp.datagramReceived(RtpPacket(0, 2, 160, 0x77, b"\xff" * 160).serialize(), PEER)
    block = ReportBlock(s.ssrc, 128, 7, s._rtcp.first_seq + 99, 80, 0, 0)
    for packet in (SenderReport(0x77, 0, 0, 2, 320, (block,)), ReceiverReport(0x77, (block,))):
        rtp.datagramReceived(build_compound([packet]), PEER)
    st = s.stats()
    assert st["packets_received"] == 2 and st["rtcp_received"] == 2 and st["bad_packets"] == 0
    assert st["peer"]["loss_pct"] == 7.0 and st["peer"]["jitter_ms"] == 10.0
    s.close()
    last = parse_rtcp(ports.pair.rtp.sent[-1][0])
    assert isinstance(last[-1], Bye) and last[-1].ssrcs == (s.ssrc,)
    assert ports.pair.rtp.sent[-1][1] == PEER and ports.pair.rtcp.sent == []


def test_bye_on_close_goes_to_the_latched_rtcp_source():
    s, clock, ports = make()
    s._pair.rtcp.protocol.datagramReceived(build_compound([ReceiverReport(0x99, ())]),
                                           ("127.0.0.1", 61001))
    s.close()
    data, addr = ports.pair.rtcp.sent[-1]
    assert addr == ("127.0.0.1", 61001) and isinstance(parse_rtcp(data)[-1], Bye)
    assert s.stats()["rtcp_sent"] == 1


def test_a_report_that_fails_to_build_does_not_stop_the_schedule():
    s, clock, ports = make()
    real = s._rx.report_block
    calls = []

    def flaky(now):
        calls.append(now)
        if len(calls) == 1:
            raise ValueError("boom")
        return real(now)

    s._rx.report_block = flaky
    ticks(clock, 1500)  # 30 s
    assert len(calls) >= 4 and len(ports.pair.rtcp.sent) == len(calls) - 1
