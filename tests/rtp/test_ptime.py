"""Packet times other than 20 ms through a real RtpSession on task.Clock (in-memory ports).

Receiving: a peer's 10/30/40/60 ms packets (and a change of size mid-call) reach audio and
payload listeners as 20 ms frames, every sample once and in order; the echo sends all of the
caller's audio back.  Old behaviour: a 30 ms packet was passed on as one frame and cut to its
first 20 ms at send time (a third of the audio lost), 40 ms kept half, and 10 ms packets were
each padded to 20 ms while only one frame per tick went out (half lost).

Sending: at the ptime the peer asked for (``set_remote(ptime=...)``), paced on the 20 ms
clock, with timestamps advancing by the samples in each packet.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from twisted.internet import task

from ivr.call import media_ops
from ivr.media import g711
from ivr.media.player import PcmSource
from ivr.rtp.clock import MediaClock
from ivr.rtp.packet import RtpPacket
from ivr.rtp.session import RtpSession
from ivr.sdp.offer_answer import make_answer
from ivr.sdp.session import parse_sdp

from .fakes import FakePorts

PEER = ("127.0.0.1", 50000)
SILENCE = 0xFF


def make(ptime=20, te=None):
    clock = task.Clock()
    ports = FakePorts()
    s = RtpSession(clock, MediaClock(clock), ports=ports, rng=random.Random(7), media_timeout=0)
    kw = {"ptime": ptime} if ptime != 20 else {}  # 20: the default (and the old signature)
    s.set_remote(*PEER, payload_type=0, codec="PCMU", telephone_event_pt=te, **kw)
    return s, clock, ports


def sent(ports, since=0):
    return [RtpPacket.parse(d) for d, _ in ports.pair.rtp.sent[since:]]


def rtp_in(s, seq, ts, payload, pt=0, marker=False):
    pkt = RtpPacket(pt, seq & 0xFFFF, ts & 0xFFFFFFFF, 0x1234, payload, marker=marker)
    s._pair.rtp.protocol.datagramReceived(pkt.serialize(), PEER)


def voice(n: int, rng: random.Random) -> bytes:
    """u-law codes that are never digital silence (0xFF/0x7F), so silence marks a gap."""
    return bytes(rng.randrange(1, 0x7F) for _ in range(n))


def drive(s, clock, sizes_ms, lead_ms=3, tail_ms=200):
    """The peer sends one packet per entry of ``sizes_ms`` at its real time, while the clock
    runs 1 ms at a time; returns the payloads sent."""
    rng = random.Random(sum(sizes_ms))
    payloads = [voice(8 * ms, rng) for ms in sizes_ms]
    at, t = {}, lead_ms
    for i, ms in enumerate(sizes_ms):
        at.setdefault(t, []).append(i)
        t += ms
    seq, ts = 100, 5000
    for now in range(t + tail_ms):
        for i in at.get(now, ()):
            rtp_in(s, seq, ts, payloads[i])
            seq, ts = seq + 1, ts + len(payloads[i])
        clock.advance(0.001)
    return payloads


SIZES = {"10ms": [10] * 60, "30ms": [30] * 30, "40ms": [40] * 20, "60ms": [60] * 15,
         "changing": [30] * 10 + [10] * 10 + [40] * 5 + [60] * 5 + [20] * 5 + [30] * 7}


@pytest.mark.parametrize("name", list(SIZES))
def test_listeners_get_every_sample_once_in_order_as_20ms_frames(name):
    s, clock, _ = make()
    pcm, encoded = [], []
    s.add_audio_listener(pcm.append)
    s.add_payload_listener(encoded.append)
    payloads = drive(s, clock, SIZES[name])
    joined = b"".join(payloads)
    got = b"".join(f.payload for f in encoded)
    assert all(len(f.payload) == 160 for f in encoded) and all(len(f) == 160 for f in pcm)
    assert got == joined[:len(got)] and len(joined) - len(got) < 160
    assert np.array_equal(np.concatenate(pcm), g711.ulaw_decode(got))


def test_burst_says_how_many_frames_one_packet_can_bring():
    s, clock, _ = make()
    bursts = []
    s.add_payload_listener(lambda f: bursts.append(f.burst))
    for i, ms in enumerate([10, 10, 20, 30, 30, 40, 60]):
        rtp_in(s, i, 0, b"\x01" * (8 * ms))
    # 10+10 -> one frame; 20 -> one; 30 -> one (80 left); 30 -> two; 40 -> two; 60 -> three
    assert bursts == [1, 1, 2, 2, 2, 2, 2, 3, 3, 3]


def echo_payloads(sizes_ms, ptime=20):
    """Run media_ops.echo on a session whose peer sends ``sizes_ms`` packets."""
    s, clock, ports = make(ptime=ptime)

    class Leg:
        rtp, ended, end_reason, negotiated = s, False, None, None

        def _ensure_rtp(self):
            return s

        def add_digit_listener(self, cb):
            pass

        remove_digit_listener = add_digit_listener

        def flush_digits(self):
            pass

    media_ops.echo(Leg(), 30)
    payloads = drive(s, clock, sizes_ms)
    return payloads, sent(ports)


@pytest.mark.parametrize("name", list(SIZES))
def test_echo_sends_back_all_of_the_callers_audio(name):
    payloads, out = echo_payloads(SIZES[name])
    joined = b"".join(payloads)
    back = b"".join(p.payload for p in out).replace(bytes([SILENCE]), b"")
    assert back == joined[:len(back)] and len(joined) - len(back) < 160, (len(back), len(joined))


@pytest.mark.parametrize("ptime", [10, 30, 40, 60])
def test_echo_at_the_callers_ptime_is_contiguous(ptime):
    payloads, out = echo_payloads([ptime] * (1200 // ptime), ptime=ptime)
    assert {len(p.payload) for p in out} == {8 * ptime}
    assert all((b.timestamp - a.timestamp) & 0xFFFFFFFF == 8 * ptime for a, b in zip(out, out[1:]))
    data = b"".join(p.payload for p in out)
    start = next(i for i, byte in enumerate(data) if byte != SILENCE)
    joined = b"".join(payloads)
    # no silence inside: after the first echoed sample the caller's audio comes back whole
    assert data[start:start + len(joined) - 160] == joined[:len(joined) - 160]


# ---------------------------------------------------------------- sending at a ptime

def tick_times(clock, ports, n):
    """Advance n ticks; {tick number: packets sent during it}."""
    out = {}
    for k in range(1, n + 1):
        before = len(ports.pair.rtp.sent)
        clock.advance(0.02 + 1e-9)
        pkts = sent(ports, before)
        if pkts:
            out[k] = pkts
    return out


@pytest.mark.parametrize("ptime,ticks_with,per_tick", [
    (10, [1, 2, 3, 4, 5, 6], 2), (20, [1, 2, 3, 4, 5, 6], 1), (30, [2, 3, 5, 6], 1),
    (40, [2, 4, 6], 1), (60, [3, 6], 1)])
def test_send_sizes_timestamps_and_pacing(ptime, ticks_with, per_tick):
    s, clock, ports = make(ptime=ptime)
    by_tick = tick_times(clock, ports, 6)
    assert sorted(by_tick) == ticks_with
    assert all(len(p) == per_tick for p in by_tick.values())
    pkts = sent(ports)
    assert all(len(p.payload) == 8 * ptime for p in pkts)
    assert [p.sequence - pkts[0].sequence for p in pkts] == list(range(len(pkts)))
    assert [(p.timestamp - pkts[0].timestamp) & 0xFFFFFFFF for p in pkts] == \
        [8 * ptime * i for i in range(len(pkts))]
    assert [p.marker for p in pkts] == [True] + [False] * (len(pkts) - 1)
    assert len(pkts) * 8 * ptime == 6 * 160  # 120 ms of timestamps for 120 ms of clock


@pytest.mark.parametrize("ptime", [10, 30, 40, 60])
def test_a_prompt_goes_out_sample_exact_in_packets_of_the_ptime(ptime):
    s, clock, ports = make(ptime=ptime)
    tone = (8000 * np.sin(np.arange(4800) * 2 * np.pi * 440 / 8000)).astype(np.int16)
    done = s.play(PcmSource(tone))
    tick_times(clock, ports, 34)
    assert done.called
    data = b"".join(p.payload for p in sent(ports))
    assert data[:4800] == g711.ulaw_encode(tone).tobytes()


def test_dtmf_sends_the_queued_audio_short_then_the_event_then_resumes():
    s, clock, ports = make(ptime=30, te=101)
    tick_times(clock, ports, 4)  # 640 samples: two 240 packets sent, 160 queued
    s.send_dtmf("5", duration_ms=40)
    tick_times(clock, ports, 12)
    pkts = sent(ports)
    audio = [p for p in pkts if p.payload_type == 0]
    events = [p for p in pkts if p.payload_type == 101]
    assert [len(p.payload) for p in audio[:3]] == [240, 240, 160]
    assert events and events[0].timestamp == (audio[2].timestamp + 160) & 0xFFFFFFFF
    # after the event audio resumes in 30 ms packets, never overlapping an earlier one
    after = [p for p in audio if (p.timestamp - events[0].timestamp) & 0x80000000 == 0]
    assert after and {len(p.payload) for p in after[:-1]} == {240}
    ends = [(p.timestamp + len(p.payload)) & 0xFFFFFFFF for p in audio]
    assert all((b.timestamp - e) & 0x80000000 == 0 for e, b in zip(ends, audio[1:]))


def test_hold_drops_the_queue_and_resumes_with_the_marker():
    s, clock, ports = make(ptime=40)
    tick_times(clock, ports, 3)  # one packet, 160 queued
    s.hold()
    tick_times(clock, ports, 3)
    assert len(sent(ports)) == 1
    s.unhold()
    tick_times(clock, ports, 2)
    pkts = sent(ports)
    assert len(pkts) == 2 and pkts[1].marker and len(pkts[1].payload) == 320
    assert (pkts[1].timestamp - pkts[0].timestamp) & 0xFFFFFFFF == 6 * 160


def test_a_late_tick_sends_the_queue_short_and_keeps_time():
    s, clock, ports = make(ptime=30)
    tick_times(clock, ports, 1)  # 160 queued
    clock.advance(0.06 + 1e-9)  # count = 3: the timestamp jumps 480
    tick_times(clock, ports, 2)
    pkts = sent(ports)
    assert [len(p.payload) for p in pkts] == [160, 240, 240]
    assert [(p.timestamp - pkts[0].timestamp) & 0xFFFFFFFF for p in pkts] == [0, 480, 720]


def test_a_new_ptime_mid_call_sends_the_queue_then_the_new_size():
    s, clock, ports = make(ptime=40)
    tick_times(clock, ports, 3)  # one 320 packet, 160 queued
    s.set_remote(*PEER, payload_type=0, codec="PCMU", ptime=20)
    tick_times(clock, ports, 2)
    s.set_remote(*PEER, payload_type=0, codec="PCMU", ptime=10)
    tick_times(clock, ports, 1)
    pkts = sent(ports)
    assert [len(p.payload) for p in pkts] == [320, 160, 160, 160, 80, 80]
    assert [(p.timestamp - pkts[0].timestamp) & 0xFFFFFFFF for p in pkts] == \
        [0, 320, 480, 640, 800, 880]


def test_close_sends_the_queued_audio():
    s, clock, ports = make(ptime=60)
    tick_times(clock, ports, 2)
    s.close()
    assert [len(p.payload) for p in sent(ports)] == [320]


@pytest.mark.parametrize("ptime", [0, 15, 25, 80, 120])
def test_a_ptime_we_cannot_pack_is_refused(ptime):
    s, _, _ = make()
    with pytest.raises(ValueError):
        s.set_remote(*PEER, ptime=ptime)


# ---------------------------------------------------------------- what we send: from the SDP

@pytest.mark.parametrize("attrs,expected", [
    ("", 20), ("a=ptime:10\r\n", 10), ("a=ptime:30\r\n", 30), ("a=ptime:40\r\n", 40),
    ("a=ptime:60\r\n", 60), ("a=ptime:25\r\n", 20), ("a=ptime:50\r\n", 40),
    ("a=ptime:100\r\n", 60), ("a=ptime:5\r\n", 10), ("a=ptime:40\r\na=maxptime:30\r\n", 30),
    ("a=maxptime:10\r\n", 10), ("a=ptime:20\r\na=maxptime:150\r\n", 20),
    ("a=ptime:60\r\na=maxptime:banana\r\n", 60)])
def test_the_answer_sends_the_ptime_the_offer_asked_for(attrs, expected):
    offer = parse_sdp("v=0\r\no=- 1 1 IN IP4 10.9.9.9\r\ns=-\r\nc=IN IP4 10.9.9.9\r\nt=0 0\r\n"
                      "m=audio 7000 RTP/AVP 0\r\n" + attrs)
    _, neg = make_answer(offer, "192.0.2.1", 40000, session_id=1, version=1)
    assert neg.ptime == expected
    s, _, _ = make()
    s.set_remote(*PEER, ptime=neg.ptime)  # always one RtpSession can send
