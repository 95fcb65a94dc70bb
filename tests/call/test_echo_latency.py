"""The echo's added delay, measured through the in-memory RTP path on task.Clock.

A peer sends one u-law packet every 20 ms into a real RtpSession (in-memory ports) driven by
the media clock; every frame carries its own number, so each echoed packet is matched with
the packet it repeats and the delay is measured (time sent back - time received), to the
millisecond.  Old behaviour: the echo held ~118 ms in steady state, and a 100 ms stall followed
by a burst moved it to ~218 ms for the rest of the call.
"""
from __future__ import annotations

import random

import pytest
from twisted.internet import defer, task

from ivr.call import media_ops
from ivr.rtp.clock import MediaClock
from ivr.rtp.packet import RtpPacket
from ivr.rtp.session import RtpSession

from tests.rtp.fakes import FakePorts

PEER = ("127.0.0.1", 50000)
NOMINAL_MS = 40.0  # the echo's nominal added delay is at most this


class _Leg:
    """The bits of a call leg that ``media_ops.echo`` uses."""

    def __init__(self, rtp):
        self.rtp, self.ended, self.end_reason, self.negotiated = rtp, False, None, None
        self.digit_listeners = []

    def _ensure_rtp(self):
        return self.rtp

    def add_digit_listener(self, cb):
        self.digit_listeners.append(cb)

    def remove_digit_listener(self, cb):
        self.digit_listeners.remove(cb)

    def flush_digits(self):
        pass


def _payload(n: int) -> bytes:
    # u-law codes 1..100 survive decode + encode unchanged; two of them name the frame
    return bytes([n % 100 + 1]) * 80 + bytes([n // 100 + 1]) * 80


def _number(payload: bytes) -> int | None:
    lo, hi = payload[0], payload[80]
    if not (1 <= lo <= 100 and 1 <= hi <= 100) or payload != bytes([lo]) * 80 + bytes([hi]) * 80:
        return None  # silence or anything else
    return (lo - 1) + 100 * (hi - 1)


def run_echo(arrivals_ms: dict[int, list[int]], end_ms: int, clock_stalls: dict[int, int] = None,
             phases: int = 1):
    """Feed packet n at each time in ``arrivals_ms`` (ms -> packet numbers), step the clock by
    1 ms (or jump ``clock_stalls[ms]`` ms at once: the server was late) and return
    {packet number: delay in ms} of the echoed packets, and the echo's Deferred."""
    clock = task.Clock()
    media = MediaClock(clock, phases=phases)
    ports = FakePorts(40000)
    rtp = RtpSession(clock, media, ports=ports, rng=random.Random(3), media_timeout=0)
    rtp.set_remote(*PEER, payload_type=0, codec="PCMU")
    leg = _Leg(rtp)
    done = media_ops.echo(leg, end_ms / 1000.0 + 1)
    received_at: dict[int, int] = {}
    delays: dict[int, float] = {}
    sent = ports.pair.rtp.sent
    seen = 0
    ms = 0
    clock_stalls = clock_stalls or {}
    while ms < end_ms:
        for n in arrivals_ms.get(ms, ()):
            received_at[n] = ms
            pkt = RtpPacket(0, 1000 + n, 160 * n, 0x1234, _payload(n))
            ports.pair.rtp.protocol.datagramReceived(pkt.serialize(), PEER)
        step = clock_stalls.get(ms, 1)
        clock.advance(step / 1000.0)
        ms += step
        for data, _ in sent[seen:]:
            n = _number(RtpPacket.parse(data).payload)
            if n is not None:
                assert n not in delays, "a frame echoed twice"
                delays[n] = ms - received_at[n]
        seen = len(sent)
    return delays, done, rtp


def steady(first: int, last: int, offset_ms: int = 3) -> dict[int, list[int]]:
    """Packet n arrives at 20 n + offset ms (the media clock fires at multiples of 20 ms)."""
    return {20 * n + offset_ms: [n] for n in range(first, last)}


def test_steady_state_delay_is_at_most_nominal():
    delays, _, _ = run_echo(steady(0, 150), 3000)
    later = [delays[n] for n in range(20, 150) if n in delays]
    assert len(later) >= 125
    assert max(later) <= NOMINAL_MS, later[:10]


def test_a_stall_then_burst_is_caught_up_within_a_second():
    # packets 50..54 (100 ms) are held up, then arrive in one burst with packet 55
    arrivals = steady(0, 50)
    arrivals.update(steady(56, 200))
    arrivals[20 * 55 + 3] = list(range(50, 56))
    delays, _, _ = run_echo(arrivals, 4200)
    before = [delays[n] for n in range(20, 50)]
    assert max(before) <= NOMINAL_MS
    # within a second of the burst (at packet 55) the delay is back to its nominal value
    settled = [delays[n] for n in range(55 + 50, 200) if n in delays]
    assert len(settled) >= 90
    assert max(settled) <= NOMINAL_MS, settled[:10]
    assert max(settled) <= max(before) + 1  # 1 ms: the 1 ms steps of a float clock


@pytest.mark.parametrize("phases", [1, 4])  # 4: the server's clock, a firing every 5 ms
def test_a_late_media_clock_is_caught_up_within_a_second(phases):
    # the server stalls 100 ms: the media clock fires once, late, while five packets arrived
    delays, _, _ = run_echo(steady(0, 200), 4200, clock_stalls={1001: 100}, phases=phases)
    before = [delays[n] for n in range(20, 49)]
    settled = [delays[n] for n in range(56 + 50, 200) if n in delays]
    assert len(settled) >= 90
    assert max(settled) <= NOMINAL_MS and max(settled) <= max(before) + 1  # 1 ms: the 1 ms steps of a float clock


def test_repeated_stalls_never_build_up():
    arrivals = {}
    n = 0
    for burst in range(8):  # every 500 ms a 100 ms hold-up, then a burst
        arrivals.update(steady(n, n + 20))
        arrivals[20 * (n + 25) + 3] = list(range(n + 20, n + 26))
        n += 26
    arrivals.update(steady(n, n + 60))
    delays, _, _ = run_echo(arrivals, 20 * (n + 60) + 20)
    tail = [delays[k] for k in range(n + 51, n + 60) if k in delays]
    assert tail and max(tail) <= NOMINAL_MS
    assert max(delays.values()) <= 140  # never more than the burst itself


def test_jittery_arrivals_keep_the_delay_bounded():
    rng = random.Random(11)
    arrivals: dict[int, list[int]] = {}
    for n in range(300):
        arrivals.setdefault(20 * n + 10 + rng.randint(-9, 9), []).append(n)
    delays, _, _ = run_echo(arrivals, 6100)
    later = [delays[k] for k in range(60, 300) if k in delays]
    assert len(later) >= 200  # frames dropped to catch up are few
    assert max(later) <= 2 * NOMINAL_MS
    assert sum(later) / len(later) <= NOMINAL_MS


def test_a_gap_keeps_the_nominal_delay():
    arrivals = steady(0, 50)
    arrivals.update(steady(60, 150))  # packets 50..59 never arrive
    delays, _, _ = run_echo(arrivals, 3100)
    assert max(delays[n] for n in range(60, 150)) <= NOMINAL_MS


def test_the_echo_ends_after_its_seconds():
    delays, done, rtp = run_echo(steady(0, 10), 200)
    results = []
    done.addBoth(results.append)
    assert not results
    for _ in range(75):
        rtp.reactor.advance(0.02)
    assert results == [None] and not rtp.playing
    assert isinstance(done, defer.Deferred)
