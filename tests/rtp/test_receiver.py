"""Batched RTP receive: MediaReceiver on real 127.0.0.1 sockets, polled by a MediaClock that runs
on task.Clock (loopback delivers a datagram into the receive queue inside sendto, so every
step is deterministic)."""
import random
import socket

import numpy as np
from twisted.internet import task

from ivr.media import g711
from ivr.media.player import PcmSource
from ivr.rtp.clock import MediaClock
from ivr.rtp.packet import RtpPacket
from ivr.rtp.ports import PortAllocator, SocketPort
from ivr.rtp.receiver import MediaReceiver
from ivr.rtp.session import RtpSession


def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def test_poll_reads_every_ready_socket_and_hands_data_and_source():
    rx = MediaReceiver()
    a, b, sender = udp(), udp(), udp()
    got = []
    rx.add(a, lambda data, addr: got.append(("a", data, addr)))
    rx.add(b, lambda data, addr: got.append(("b", data, addr)))
    assert rx.poll() == 0 and got == []
    sender.sendto(b"one", a.getsockname())
    sender.sendto(b"two", b.getsockname())
    sender.sendto(b"three", a.getsockname())
    assert rx.poll() == 3
    src = sender.getsockname()
    assert sorted(got) == sorted([("a", b"one", src), ("b", b"two", src), ("a", b"three", src)])
    # per socket, datagrams keep their order
    assert [d for s, d, _ in got if s == "a"] == [b"one", b"three"]
    assert rx.packets == 3 and rx.errors == 0
    for s in (a, b, sender):
        s.close()
    rx.close()


def test_rounds_bound_the_work_of_one_poll_and_the_rest_waits():
    rx = MediaReceiver(max_rounds=2)
    a, sender = udp(), udp()
    got = []
    rx.add(a, lambda data, addr: got.append(data))
    for i in range(5):
        sender.sendto(bytes([i]), a.getsockname())
    assert rx.poll() == 2  # one datagram per ready socket per round
    assert rx.poll() == 2
    assert rx.poll() == 1
    assert got == [bytes([i]) for i in range(5)]


def test_removed_socket_is_not_read_and_a_failing_handler_does_not_stop_the_others():
    rx = MediaReceiver()
    a, b, c, sender = udp(), udp(), udp(), udp()
    got = []

    def broken(data, addr):
        raise RuntimeError("boom")

    rx.add(a, broken)
    rx.add(b, lambda data, addr: got.append(data))
    rx.add(c, lambda data, addr: got.append(b"c:" + data))
    rx.remove(c)
    rx.remove(c)  # twice is harmless
    for s in (a, b, c):
        sender.sendto(b"x", s.getsockname())
    assert rx.poll() == 2
    assert got == [b"x"] and rx.errors == 1 and rx.sockets == 2


class _Stream:
    def __init__(self, log):
        self.log = log

    def tick(self, count):
        self.log.append("tick")


class _Receiver:
    def __init__(self, log):
        self.log = log

    def poll(self):
        self.log.append("poll")
        return 0


def test_clock_polls_after_each_firing_sent_its_packets():
    clock = task.Clock()
    log = []
    mc = MediaClock(clock, phases=2, receiver=_Receiver(log))
    mc.register(_Stream(log))
    mc.register(_Stream(log))
    clock.advance(0.01)  # phase 1's firing: one stream, then the poll
    clock.advance(0.01)  # phase 0's firing
    assert log == ["tick", "poll", "tick", "poll"]


def test_allocator_with_receiver_binds_plain_sockets_in_range_and_releases_them():
    rx = MediaReceiver()
    low = 41000 + 2 * random.randrange(2000)
    alloc = PortAllocator(low, low + 20, receiver=rx)
    from twisted.internet.protocol import DatagramProtocol
    pair = alloc.allocate(DatagramProtocol, DatagramProtocol)
    assert isinstance(pair.rtp, SocketPort) and low <= pair.number <= low + 20
    assert pair.number % 2 == 0
    assert pair.rtp.socket.getsockname() == ("127.0.0.1", pair.number)
    assert pair.rtcp.socket.getsockname() == ("127.0.0.1", pair.number + 1)
    assert rx.sockets == 2 and alloc.in_use == 1
    # a pair someone else holds is skipped
    nxt = alloc._next
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", nxt))
    second = alloc.allocate(DatagramProtocol, DatagramProtocol)
    assert second.number != nxt
    blocker.close()
    assert alloc.release(pair) is None
    alloc.release(second)
    assert rx.sockets == 0 and alloc.in_use == 0
    assert pair.rtp.socket.fileno() == -1  # closed


def test_two_sessions_over_receiver_ports_exchange_audio_only_when_the_clock_reads():
    clock = task.Clock()
    rx = MediaReceiver()
    mc = MediaClock(clock, receiver=rx)
    low = 45000 + 2 * random.randrange(2000)
    ports = PortAllocator(low, low + 40, receiver=rx)
    a = RtpSession(clock, mc, ports=ports, rng=random.Random(1))
    b = RtpSession(clock, mc, ports=ports, rng=random.Random(2))
    heard, digits = [], []
    b.add_audio_listener(heard.append)
    b.on_dtmf(lambda d, source: digits.append(d))
    a.set_remote("127.0.0.1", b.local_port, 0, "PCMU", telephone_event_pt=101)
    b.set_remote("127.0.0.1", a.local_port, 0, "PCMU", telephone_event_pt=101)
    tone = (6000 * np.sin(np.arange(800) * 2 * np.pi * 1000 / 8000)).astype(np.int16)
    done = []
    a.play(PcmSource(tone)).addCallback(done.append)
    # a packet sent outside a firing waits in the socket until the clock reads it
    early = RtpPacket(payload_type=0, sequence=(a._seq - 1) & 0xFFFF, timestamp=a._ts, ssrc=a.ssrc,
                      payload=b"\xff" * 160)
    a._pair.rtp.socket.sendto(early.serialize(), ("127.0.0.1", b.local_port))
    assert b.stats()["packets_received"] == 0
    clock.advance(0.02 + 1e-9)
    assert b.stats()["packets_received"] == 2  # the early one and a's first, both read by the firing
    for _ in range(7):
        clock.advance(0.02 + 1e-9)
    a.send_dtmf("7", duration_ms=60)
    for _ in range(20):
        clock.advance(0.02 + 1e-9)
    assert done == [5]
    want = g711.ulaw_decode(g711.ulaw_encode(tone)).tobytes()
    assert want in np.concatenate(heard).tobytes()
    assert digits == ["7"]
    assert b.stats()["packets_received"] >= 25
    a.close()
    b.close()
    assert rx.sockets == 0 and not mc.running
