"""A firing's packets leave together (one call into the batched I/O backend per phase, one
sendmmsg per socket inside it), arrivals are read in one call per poll, and every session's
counters stay exact: a packet that could not be sent counts in its send_errors.  Real
127.0.0.1 sockets, the media clock on task.Clock; each test runs native and pure
(conftest.py)."""
from __future__ import annotations

import random

from twisted.internet import task

from ivr.rtp.clock import MediaClock
from ivr.rtp.packet import RtpPacket
from ivr.rtp.ports import PortAllocator
from ivr.rtp.receiver import MediaReceiver
from ivr.rtp.sendbatch import SendBatch
from ivr.rtp.session import RtpSession
from tests.rtp.sockets import drain, udp


class SpyIO:
    """The backend under test, recording every call."""

    def __init__(self, io):
        self.io, self.name = io, io.name
        self.sends: list[int] = []  # datagrams per send_many call
        self.reads: list[int] = []  # sockets per recv_many call

    def send_many(self, socks, datas, addrs):
        self.sends.append(len(socks))
        return self.io.send_many(socks, datas, addrs)

    def recv_many(self, socks, fds, n, bufsize=2048):
        self.reads.append(len(socks))
        return self.io.recv_many(socks, fds, n, bufsize)
def setup(media_io, n, phases=1):
    clock = task.Clock()
    spy = SpyIO(media_io)
    rx = MediaReceiver(io=spy)
    mc = MediaClock(clock, phases=phases, receiver=rx, io=spy)
    low = 30000 + 2 * random.randrange(5000)
    ports = PortAllocator(low, low + 4 * n + 40, receiver=rx)
    sessions = [RtpSession(clock, mc, ports=ports, rng=random.Random(i), media_timeout=0)
                for i in range(n)]
    return clock, spy, rx, mc, sessions


def test_each_phase_sends_its_streams_packets_in_one_call_and_every_packet_arrives(media_io):
    clock, spy, rx, mc, sessions = setup(media_io, 6, phases=2)
    out = udp()
    for s in sessions:
        s.set_remote("127.0.0.1", out.getsockname()[1], 0, "PCMU")
    for _ in range(10):
        clock.advance(0.01 + 1e-9)  # a firing per phase, each with three streams
    assert spy.sends == [3] * 10
    got = drain(out)
    assert len(got) == 30
    by_port = {}
    for data, addr in got:
        by_port.setdefault(addr[1], []).append(RtpPacket.parse(data).sequence)
    for s in sessions:  # each from its own socket, in order, counted exactly
        seqs = by_port[s.local_port]
        assert len(seqs) == 5 == s.stats()["packets_sent"]
        assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:]))
        assert s.stats()["send_errors"] == 0
    assert mc.metrics()["socket_io"] == media_io.name and mc.metrics()["batched_packets"] == 30
    for s in sessions:
        s.close()


def test_a_packet_that_cannot_leave_counts_in_its_own_sessions_send_errors(media_io):
    clock, spy, rx, mc, sessions = setup(media_io, 3)
    out = udp()
    for s in sessions:
        s.set_remote("127.0.0.1", out.getsockname()[1], 0, "PCMU")
    broken = sessions[1]
    rx.remove(broken._rtp_socket)
    broken._rtp_socket.close()  # its socket is gone under it (as if closed mid-firing)
    for _ in range(4):
        clock.advance(0.02 + 1e-9)
    assert spy.sends == [3] * 4
    got = drain(out)
    assert len(got) == 8 and broken.local_port not in {addr[1] for _d, addr in got}
    assert broken.stats()["send_errors"] == 4 and broken.stats()["packets_sent"] == 4
    assert [s.stats()["send_errors"] for s in (sessions[0], sessions[2])] == [0, 0]
    assert mc.batch.failed == 4


def test_the_receiver_reads_every_ready_socket_in_one_call(media_io):
    spy = SpyIO(media_io)
    rx = MediaReceiver(io=spy)
    socks = [udp() for _ in range(5)]
    got = []
    for i, s in enumerate(socks):
        rx.add(s, lambda data, addr, i=i: got.append((i, data)))
    sender = udp()
    for i, s in enumerate(socks):
        for k in range(2):
            sender.sendto(bytes([i, k]), s.getsockname())
    assert rx.poll() == 10
    assert spy.reads == [5]
    assert sorted(got) == [(i, bytes([i, k])) for i in range(5) for k in range(2)]
    assert rx.poll() == 0 and spy.reads == [5]  # nothing ready: no read at all
    rx.close()


def test_what_handlers_send_during_a_read_leaves_in_one_call_after_it(media_io):
    spy = SpyIO(media_io)
    rx = MediaReceiver(io=spy)
    batch = SendBatch(spy)
    rx.use_batch(batch)
    out = udp()
    relays = [udp() for _ in range(3)]
    counters = {"send_errors": 0}
    seen_active = []

    def relay(sock):
        def handler(data, addr):
            seen_active.append(batch.active)
            batch.add(sock, data, out.getsockname(), counters)
        return handler

    for s in relays:
        rx.add(s, relay(s))
    sender = udp()
    for s in relays:
        sender.sendto(b"p", s.getsockname())
    assert rx.poll() == 3
    assert seen_active == [True] * 3 and not batch.active
    assert spy.sends == [3]
    assert len(drain(out)) == 3 and counters["send_errors"] == 0


def test_a_handler_removing_a_socket_drops_its_datagrams_not_yet_handed_out(media_io):
    rx = MediaReceiver(io=media_io)
    a, b, sender = udp(), udp(), udp()
    got = []

    def first(data, addr):
        got.append(("a", data))
        rx.remove(b)

    rx.add(a, first)
    rx.add(b, lambda data, addr: got.append(("b", data)))
    sender.sendto(b"1", b.getsockname())
    sender.sendto(b"2", a.getsockname())
    rx.poll()
    assert ("a", b"2") in got
    # b's datagram was read in the same call; handed out only if b came first
    assert got in ([("a", b"2")], [("b", b"1"), ("a", b"2")])


def test_a_failing_backend_still_sends_each_packet_once(media_io):
    class Broken:
        name = "broken"

        def send_many(self, socks, datas, addrs):
            raise RuntimeError("boom")

    batch = SendBatch(Broken())
    a, out = udp(), udp()
    counters = {"send_errors": 0}
    assert batch.open() is False and batch.open() is True
    for k in range(3):
        batch.add(a, bytes([k]), out.getsockname(), counters)
    batch.add(a, b"x", ("127.0.0.1", 0), counters)  # refused by the kernel
    batch.close()
    assert [d for d, _ in drain(out)] == [b"\x00", b"\x01", b"\x02"]
    assert counters["send_errors"] == 1 and batch.pending == 0 and not batch.active
