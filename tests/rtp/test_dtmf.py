"""RFC 4733 sender/receiver, checked against the real SIPp dtmf_2833_*.pcap captures."""
import random

import pytest

from ivr.rtp.dtmf import (DtmfReceiver, DtmfSender, TelephoneEvent, decode_event, encode_event,
                          event_code)
from ivr.rtp.packet import RtpError, RtpPacket

from .pcaputil import fixture_path, read_udp

PCAPS = {d: f"dtmf_2833_{n}.pcap" for d, n in
         [(str(i), str(i)) for i in range(10)] + [("*", "star"), ("#", "pound")]}


def load(name):
    """(arrival, RtpPacket) for every packet of a SIPp DTMF pcap."""
    return [(r.time, RtpPacket.parse(r.payload)) for r in read_udp(fixture_path(name))]


def feed_all(rx, items):
    out = []
    for arrival, p in items:
        out += rx.feed(p.timestamp, p.sequence, p.payload, arrival)
    return out


@pytest.mark.parametrize("digit,name", sorted(PCAPS.items()))
def test_sipp_pcap_gives_exactly_one_digit(digit, name):
    items = load(name)
    assert len(items) == 10
    assert all(p.payload_type == 101 for _, p in items)
    assert items[0][1].marker and not any(p.marker for _, p in items[1:])
    assert [decode_event(p.payload).end for _, p in items] == [False] * 7 + [True] * 3
    # byte-exact round trip of every packet
    for r in read_udp(fixture_path(name)):
        assert RtpPacket.parse(r.payload).serialize() == r.payload
    got = feed_all(DtmfReceiver(), items)
    assert [(d.digit, d.reason) for d in got] == [(digit, "end")]
    assert got[0].timestamp == items[0][1].timestamp
    assert got[0].duration == decode_event(items[-1][1].payload).duration == 2240


@pytest.mark.parametrize("name", sorted(PCAPS.values()))
def test_sipp_pcap_end_packets_lost_timeout(name):
    items = [it for it in load(name) if not decode_event(it[1].payload).end]
    rx = DtmfReceiver(end_timeout=0.5)
    assert feed_all(rx, items) == []
    last = items[-1][0]
    assert rx.poll(last + 0.49) == []
    got = rx.poll(last + 0.5)
    assert len(got) == 1 and got[0].reason == "timeout" and got[0].duration == 1920
    assert rx.poll(last + 5) == []
    # a late end packet after the timeout is not a second digit
    late = load(name)[-1][1]
    assert rx.feed(late.timestamp, late.sequence, late.payload, last + 6) == []


def test_sipp_pcaps_back_to_back_with_end_packets_lost():
    """Events of consecutive pcaps get distinct timestamps; the next event closes the open one."""
    rx = DtmfReceiver()
    out = []
    base = 0
    for k, digit in enumerate("19#"):
        items = [it for it in load(PCAPS[digit]) if not decode_event(it[1].payload).end]
        for arrival, p in items:
            out += rx.feed(p.timestamp + base, p.sequence, p.payload, arrival + k)
        base += 8000
    out += rx.poll(10**10)
    assert [(d.digit, d.reason) for d in out] == [("1", "next-event"), ("9", "next-event"),
                                                  ("#", "timeout")]


@pytest.mark.parametrize("seed", range(20))
def test_sipp_pcap_shuffled_and_duplicated(seed):
    rng = random.Random(seed)
    items = load(PCAPS["5"])
    items = items + rng.sample(items, 4)
    rng.shuffle(items)
    rx = DtmfReceiver()
    got = feed_all(rx, items)
    got += rx.poll(max(t for t, _ in items) + 10)
    assert [d.digit for d in got] == ["5"]
    assert got[0].timestamp == items[0][1].timestamp


def test_only_one_end_packet_survives():
    items = load(PCAPS["*"])
    items = items[:3] + [items[8]]
    got = feed_all(DtmfReceiver(), items)
    assert [(d.digit, d.reason, d.duration) for d in got] == [("*", "end", 2240)]


def test_end_before_updates_reordered():
    items = load(PCAPS["0"])
    items = [items[9]] + items[:9]
    rx = DtmfReceiver()
    assert [d.digit for d in feed_all(rx, items)] == ["0"]
    assert rx.poll(1e12) == []


def test_flash_and_garbage_ignored():
    rx = DtmfReceiver()
    assert rx.feed(100, 1, encode_event(16, False, 10, 160), 0.0) == []
    assert rx.feed(100, 2, encode_event(16, True, 10, 320), 0.0) == []
    assert rx.feed(200, 3, b"\x01", 0.0) == []
    assert rx.poll(100.0) == []
    assert rx.ignored == 3


def test_all_sixteen_events():
    rx = DtmfReceiver()
    got = []
    for i, d in enumerate("0123456789*#ABCD"):
        got += rx.feed(1000 * i, i, encode_event(d, True, 10, 800), float(i))
    assert "".join(g.digit for g in got) == "0123456789*#ABCD"


def test_encode_decode_event():
    assert encode_event("*", False, 10, 0) == bytes([10, 10, 0, 0])
    assert encode_event("#", True, 10, 800) == bytes([11, 0x8A, 0x03, 0x20])
    assert encode_event("d", False, 63, 65535) == bytes([15, 63, 0xFF, 0xFF])
    assert decode_event(bytes([11, 0x8A, 0x03, 0x20, 0xFF])) == TelephoneEvent(11, True, 10, 800)
    with pytest.raises(RtpError):
        decode_event(b"\x00\x00")
    for bad in ("x", "12", "", 256, -1):
        with pytest.raises(ValueError):
            event_code(bad)
    with pytest.raises(ValueError):
        encode_event("1", False, 64, 0)
    with pytest.raises(ValueError):
        encode_event("1", False, 1, 65536)


def test_sender_100ms():
    pkts = list(DtmfSender("7", duration_ms=100))
    events = [decode_event(p.payload) for p in pkts]
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert [p.marker for p in pkts] == [True] + [False] * 6
    assert {p.timestamp_offset for p in pkts} == {0}
    assert {e.event for e in events} == {7}
    assert {e.volume for e in events} == {10}


def test_sender_short_and_rounding():
    pkts = list(DtmfSender("1", duration_ms=10))
    assert [decode_event(p.payload).duration for p in pkts] == [160] * 3
    assert pkts[0].marker and all(p.end for p in pkts)
    pkts = list(DtmfSender("1", duration_ms=110))  # rounded up to whole packets
    assert decode_event(pkts[-1].payload).duration == 960


def test_sender_long_event_segments_and_receiver_joins_them():
    pkts = list(DtmfSender("9", duration_ms=10000))  # 80000 samples > 65535
    offsets = sorted({p.timestamp_offset for p in pkts})
    assert offsets == [0, 65440]
    assert [p.marker for p in pkts].count(True) == 2
    assert max(decode_event(p.payload).duration for p in pkts) <= 65535
    rx = DtmfReceiver()
    got = []
    for i, p in enumerate(pkts):
        got += rx.feed(5000 + p.timestamp_offset, i, p.payload, i * 0.02)
    assert [(d.digit, d.duration, d.timestamp) for d in got] == [("9", 80000, 5000)]


def test_sender_feeds_receiver_with_losses():
    for lose in range(7):
        pkts = list(DtmfSender("B"))
        kept = [p for i, p in enumerate(pkts) if i != lose]
        rx = DtmfReceiver()
        got = [d for i, p in enumerate(kept) for d in rx.feed(480, i, p.payload, i * 0.02)]
        got += rx.poll(100)
        assert [d.digit for d in got] == ["B"]


def test_send_queue_sends_each_event_whole_with_a_gap_and_hands_back_its_token():
    from ivr.rtp.dtmf import DtmfSendQueue, DtmfSender, event_code
    q = DtmfSendQueue(gap_ticks=2)
    assert q.idle and q.next_packet(0) is None
    q.add(event_code("1"), 40)
    q.add(event_code("2"), 40, done="both sent")
    per_event = len(list(DtmfSender("1", duration_ms=40)))
    ticks, ts = [], 1000
    while not q.idle:
        pkt = q.next_packet(ts)
        if pkt is None:
            ticks.append("gap")
        else:
            ticks.append((pkt[0][0], pkt[1], pkt[2]))  # event code, marker, timestamp
            ticks[-1] += q.sent()
        ts += 160
    first, second = ticks[:per_event], ticks[per_event + 2:2 * per_event + 2]
    assert ticks[per_event:per_event + 2] == ["gap", "gap"]
    assert ticks[2 * per_event + 2:] == ["gap", "gap"]  # a gap follows every event
    assert [t[0] for t in first] == [1] * per_event and [t[0] for t in second] == [2] * per_event
    assert [t[1] for t in first] == [True] + [False] * (per_event - 1)  # marker on the first
    assert {t[2] for t in first} == {1000}  # one event, one timestamp: where it started
    assert {t[2] for t in second} == {1000 + 160 * (per_event + 2)}
    assert first[-1][3:] == (True, None) and second[-1][3:] == (True, "both sent")
    assert all(t[3:] == (False, None) for t in first[:-1] + second[:-1])


def test_send_queue_clear_returns_the_tokens_never_sent():
    from ivr.rtp.dtmf import DtmfSendQueue
    q = DtmfSendQueue()
    q.add(1, 100, done="a")
    q.add(2, 100)
    q.add(3, 100, done="b")
    assert q.next_packet(0) is not None  # "a" is being sent
    assert q.clear() == ["b", "a"] and q.idle
