"""The relay path alone, in one process: CPU per relayed packet without SIP, SIPp or dumpcap.

``python -m bench.relay_inprocess [PAIRS] [PERIODS]`` (from the checkout's root).

PAIRS bridged pairs as the server builds them: two ``RtpSession``s on ports from a
``PortAllocator`` with a ``MediaReceiver``, one ``MediaClock`` (the server's four phases) with
the receiver, each leg's payloads pushed into the other leg's ``RelaySource``.  Every 20 ms
each leg's peer (a plain socket of this process) sends one unique PCMU packet; then the clock
is advanced by one period on a ``task.Clock``, so its firings send what is due and read what
arrived.  Only the clock's firings are timed (``time.process_time``), so the peers' own
sends and reads are not counted; loopback delivery of the relay's sends (the kernel's receive
path of the peer's socket) is, as it is in B3.  The figure is CPU µs per relayed packet,
receive + send; B3 measures the same work inside ``ivr serve`` under SIPp.  The deterministic
clock makes it a good A/B check between two commits on a noisy machine (run them alternately).
Writes ``bench/results/relay_inprocess.json``.
"""
from __future__ import annotations

import socket
import struct
import sys
import time

from twisted.internet import task

from ivr.call.bridge import RelaySource
from ivr.rtp.clock import SERVER_PHASES, MediaClock
from ivr.rtp.ports import PortAllocator
from ivr.rtp.receiver import MediaReceiver
from ivr.rtp.session import PlaybackStopped, RtpSession

from . import common

_HEADER = struct.Struct("!BBHII")


def _peer() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def measure(pairs: int = 100, periods: int = 250, warmup: int = 25) -> dict:
    clock = task.Clock()
    receiver = MediaReceiver()
    media = MediaClock(clock, phases=SERVER_PHASES, receiver=receiver)
    low, high = common.free_range(pairs * 4 + 40)
    ports = PortAllocator(low, high, receiver=receiver)
    legs, peers = [], []
    for _ in range(pairs):
        a = RtpSession(clock, media, ports=ports, media_timeout=0)
        b = RtpSession(clock, media, ports=ports, media_timeout=0)
        pa, pb = _peer(), _peer()
        a.set_remote("127.0.0.1", pa.getsockname()[1], 0, "PCMU", telephone_event_pt=101)
        b.set_remote("127.0.0.1", pb.getsockname()[1], 0, "PCMU", telephone_event_pt=101)
        to_a, to_b = RelaySource(), RelaySource()
        for leg, source in ((a, to_a), (b, to_b)):  # close() stops playback: expected
            leg.play(source).addErrback(lambda f: f.trap(PlaybackStopped))
        a.add_payload_listener(to_b.push)
        b.add_payload_listener(to_a.push)
        legs += [a, b]
        peers += [(pa, ("127.0.0.1", a.local_port), 2 * len(peers)),
                  (pb, ("127.0.0.1", b.local_port), 2 * len(peers) + 1)]

    def send(k: int) -> None:
        for sock, dest, ssrc in peers:  # every payload unique, as in B3's relay.pcap
            payload = (k.to_bytes(4, "big") + ssrc.to_bytes(4, "big")) * 20
            sock.sendto(_HEADER.pack(0x80, 0, k & 0xFFFF, (k * 160) & 0xFFFFFFFF, ssrc) + payload,
                        dest)

    def drain() -> int:
        """Read what came back to the peers; count the relayed payloads (not silence)."""
        got = 0
        for sock, _dest, _ssrc in peers:
            try:
                while True:
                    data = sock.recv(2048)
                    got += data[12] != 0xFF  # PCMU silence is 0xFF; every sent payload starts 0x00
            except BlockingIOError:
                pass
        return got

    step = media.interval / media.phases
    cpu, returned = 0.0, 0
    for k in range(warmup + periods):
        send(k)
        t = time.process_time()
        for _ in range(media.phases):
            clock.advance(step)
        spent = time.process_time() - t
        got = drain()
        if k >= warmup:
            cpu += spent
            returned += got
    relayed = 2 * pairs * periods
    for leg in legs:
        leg.close()
    for sock, _dest, _ssrc in peers:
        sock.close()
    receiver.close()
    return {"pairs": pairs, "periods": periods, "relayed_packets": relayed,
            "relayed_payloads_back_at_peers": returned, "cpu_s": round(cpu, 4),
            "us_per_relayed_packet": round(cpu * 1e6 / relayed, 2)}


def main(argv: list[str]) -> int:
    pairs = int(argv[0]) if argv else 100
    periods = int(argv[1]) if len(argv) > 1 else 250
    started = time.monotonic()
    figures = measure(pairs, periods)
    print(f"relay in-process: {figures['pairs']} pairs x {figures['periods']} periods: "
          f"{figures['us_per_relayed_packet']} us CPU per relayed packet "
          f"({figures['relayed_payloads_back_at_peers']} of {figures['relayed_packets']} relayed "
          f"payloads back at the peers)")
    common.write_result("relay_inprocess", "inprocess", figures,
                        {"us_per_relayed_packet": "<= 10 (B3's target)"}, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
