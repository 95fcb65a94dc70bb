"""RtcpReporter on its own: no sockets, no clock, a fixed random source."""
import random

import pytest

from ivr.rtp.packet import (Bye, ReceiverReport, ReportBlock, RtpError, SenderReport,
                            SourceDescription, build_compound, ntp_from_unix, ntp_middle32,
                            parse_rtcp)
from ivr.rtp.rtcp import RtcpReporter
from ivr.rtp.stats import ReceiveStats


def reporter(interval=5.0):
    return RtcpReporter(0x1234, "ivr@test", interval, random.Random(7))


def test_follows_rtp_until_the_peer_sends_rtcp():
    r = reporter()
    r.follow_rtp("192.0.2.1", 4000)
    assert r.remote == ("192.0.2.1", 4001)
    r.follow_rtp("192.0.2.1", 4000, rtcp_port=5005)  # a=rtcp: in the SDP
    assert r.remote == ("192.0.2.1", 5005)
    r.received(build_compound([ReceiverReport(0x99, ())]), ("198.51.100.7", 6001), 1.0,
               ReceiveStats())
    assert r.remote == ("198.51.100.7", 6001) and r.latched
    r.follow_rtp("192.0.2.2", 4000)  # an RTP re-latch no longer moves RTCP
    assert r.remote == ("198.51.100.7", 6001)


def test_schedule_is_randomised_between_half_and_one_and_a_half_intervals():
    r = reporter(interval=4.0)
    assert not r.due(1e9)  # never scheduled: never due
    r.schedule(0.0)  # the first report: half an interval (RFC 3550 6.2)
    assert 1.0 <= r.next_at <= 3.0
    gaps = []
    for _ in range(200):
        r.schedule(100.0)
        gaps.append(r.next_at - 100.0)
        assert not r.due(r.next_at - 1e-6) and r.due(r.next_at)
    assert 2.0 <= min(gaps) < 2.5 and 5.5 < max(gaps) <= 6.0


def test_first_report_comes_after_half_an_interval():
    firsts = []
    for seed in range(200):
        r = RtcpReporter(1, "x", 5.0, random.Random(seed))
        r.schedule(10.0)
        firsts.append(r.next_at - 10.0)
    assert 1.25 <= min(firsts) < 1.5 and 3.5 < max(firsts) <= 3.75


def test_a_rtcp_port_and_address_and_mux_choose_the_destination():
    r = reporter()
    r.follow_rtp("192.0.2.1", 4000, rtcp_port=4711, rtcp_ip="198.51.100.2")
    assert r.remote == ("198.51.100.2", 4711) and not r.mux
    r = reporter()
    r.follow_rtp("192.0.2.1", 4000, rtcp_port=4711, mux=True)  # mux wins over a=rtcp
    assert r.remote == ("192.0.2.1", 4000) and r.mux
    # with mux, the peer's RTCP does not latch on its own: the RTP latch moves both
    r.received(build_compound([ReceiverReport(0x99, ())]), ("203.0.113.5", 9999), 1.0,
               ReceiveStats())
    assert r.remote == ("192.0.2.1", 4000) and not r.latched
    r.follow_rtp("203.0.113.5", 7000)  # an RTP re-latch (mux=None keeps mux)
    assert r.remote == ("203.0.113.5", 7000) and r.mux


def test_peer_loss_percent_is_over_the_packets_it_expected_from_our_first_seq():
    r = RtcpReporter(0x1234, "x", 5.0, random.Random(1), first_seq=65500)
    # 100 packets sent from 65500 across the wrap: extended highest = 65536 + 63
    block = ReportBlock(0x1234, fraction_lost=26, cumulative_lost=4, highest_seq=65536 + 63,
                        jitter=40, lsr=0, dlsr=0)
    r.received(build_compound([SenderReport(0x99, 0, 0, 0, 0, (block,))]), ("192.0.2.1", 1),
               1.0, ReceiveStats())
    assert r.peer_view["loss_pct"] == 4.0 and r.peer_view["jitter_ms"] == 5.0
    assert r.peer_view["fraction_lost"] == pytest.approx(26 / 256)
    assert "rtt_ms" not in r.peer_view  # no LSR: no round trip


def test_sender_report_only_after_sending_and_bye_on_request():
    r = reporter()
    rx = ReceiveStats()
    first = parse_rtcp(r.compound(10.0, rx, 1000, 0, 0))
    assert isinstance(first[0], ReceiverReport) and first[0].reports == ()
    assert isinstance(first[1], SourceDescription)
    r.sent_since_report = True
    sr, _sdes, bye = parse_rtcp(r.compound(11.0, rx, 8000, 50, 8000, bye=True))
    assert isinstance(sr, SenderReport)
    assert (sr.ssrc, sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (0x1234, 8000, 50, 8000)
    assert isinstance(bye, Bye) and bye.ssrcs == (0x1234,)
    assert not r.sent_since_report  # the next one is an RR again unless we send


def test_peer_report_about_us_gives_loss_jitter_and_round_trip():
    r = reporter()
    now = 1000.0
    lsr = ntp_middle32(ntp_from_unix(now - 0.250))  # our SR went out 250 ms ago
    block = ReportBlock(ssrc=0x1234, fraction_lost=64, cumulative_lost=3, highest_seq=77,
                        jitter=16, lsr=lsr, dlsr=int(0.050 * 65536))  # held 50 ms by the peer
    other = ReportBlock(ssrc=0x5555, fraction_lost=255, cumulative_lost=9, highest_seq=1,
                        jitter=0, lsr=0, dlsr=0)
    r.received(build_compound([ReceiverReport(0x99, (other, block)), Bye((0x99,))]),
               ("192.0.2.1", 4001), now, ReceiveStats())
    view = r.peer_view
    assert view["fraction_lost"] == 0.25 and view["cumulative_lost"] == 3
    assert view["jitter_ms"] == 2.0 and view["highest_seq"] == 77
    assert view["rtt_ms"] == pytest.approx(200.0, abs=0.1)
    assert r.peer_bye


def test_malformed_rtcp_raises_and_changes_nothing():
    r = reporter()
    r.follow_rtp("192.0.2.1", 4000)
    with pytest.raises(RtpError):
        r.received(b"\x80\xc9\x00", ("203.0.113.9", 1), 1.0, ReceiveStats())
    assert r.remote == ("192.0.2.1", 4001) and not r.latched and not r.peer_bye
