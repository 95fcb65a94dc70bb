"""The bridge's relay queue after stalls, measured through two in-memory RtpSessions on task.Clock.

Leg a receives the peer's packets; each payload is queued (undecoded) for leg b, wired as
``Bridge._hook`` wires them, and b sends it on its next media-clock tick.  Every frame carries
its own number, so each relayed packet is matched with the packet it repeats.
"""
from __future__ import annotations

import random

from twisted.internet import task

from ivr.call.bridge import MAX_FRAMES, RelaySource
from ivr.rtp.clock import MediaClock
from ivr.rtp.packet import RtpPacket
from ivr.rtp.session import RtpSession

from tests.call.test_echo_latency import NOMINAL_MS, _number, _payload, steady
from tests.rtp.fakes import FakePorts

PEER_A = ("127.0.0.1", 50000)
PEER_B = ("127.0.0.1", 50100)


def run_relay(arrivals_ms: dict[int, list[int]], end_ms: int, clock_stalls: dict[int, int] = None):
    clock = task.Clock()
    media = MediaClock(clock)
    ports_a, ports_b = FakePorts(40000), FakePorts(40100)
    a = RtpSession(clock, media, ports=ports_a, rng=random.Random(1), media_timeout=0)
    b = RtpSession(clock, media, ports=ports_b, rng=random.Random(2), media_timeout=0)
    a.set_remote(*PEER_A, payload_type=0, codec="PCMU")
    b.set_remote(*PEER_B, payload_type=0, codec="PCMU")
    relay = RelaySource()
    a.add_payload_listener(relay.push)
    b.play(relay)
    received_at, delays, depth = {}, {}, []
    sent = ports_b.pair.rtp.sent
    seen, ms = 0, 0
    clock_stalls = clock_stalls or {}
    while ms < end_ms:
        for n in arrivals_ms.get(ms, ()):
            received_at[n] = ms
            pkt = RtpPacket(0, 1000 + n, 160 * n, 0x1234, _payload(n))
            ports_a.pair.rtp.protocol.datagramReceived(pkt.serialize(), PEER_A)
        depth.append(len(relay.frames))
        step = clock_stalls.get(ms, 1)
        clock.advance(step / 1000.0)
        ms += step
        for data, _ in sent[seen:]:
            n = _number(RtpPacket.parse(data).payload)
            if n is not None:
                assert n not in delays, "a frame relayed twice"
                delays[n] = ms - received_at[n]
        seen = len(sent)
    return delays, relay, depth


def test_a_stall_then_burst_is_caught_up_at_once():
    arrivals = steady(0, 50)
    arrivals.update(steady(56, 200))
    arrivals[20 * 55 + 3] = list(range(50, 56))
    delays, relay, _ = run_relay(arrivals, 4200)
    assert max(delays[n] for n in range(20, 50)) <= NOMINAL_MS
    settled = [delays[n] for n in range(55 + 50, 200) if n in delays]
    assert len(settled) >= 90 and max(settled) <= NOMINAL_MS


def test_a_late_media_clock_is_caught_up():
    delays, relay, _ = run_relay(steady(0, 200), 4200, clock_stalls={1001: 100})
    settled = [delays[n] for n in range(56 + 50, 200) if n in delays]
    assert len(settled) >= 90 and max(settled) <= NOMINAL_MS


def test_a_flood_does_not_grow_the_queue():
    arrivals = steady(0, 50)
    arrivals[20 * 50 + 3] = list(range(50, 2050))  # 40 s of audio in one burst
    arrivals.update({20 * (n - 1950) + 3: [n] for n in range(2051, 2150)})
    delays, relay, depth = run_relay(arrivals, 20 * 200 + 20)
    assert max(depth) <= MAX_FRAMES
    assert max(delays[n] for n in range(2060, 2150) if n in delays) <= NOMINAL_MS
